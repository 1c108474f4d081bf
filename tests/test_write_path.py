"""The jobs' write path (write_path.write_batch: Arrow tables, one transaction per batch) and
the transaction helper, on real warehouse files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sigwarehouse import probes, store
from sigwarehouse.freqrex.spectral import pack_mask
from sigwarehouse.jobs import asr, compose, ingest, label_transfer
from sigwarehouse.signals import SIGNAL_KINDS, encode_responsibility
from sigwarehouse.store import write_path

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

PH = "0123456789abcdef"
N_BINS = 4001


def start(path: Path) -> str:
    with store.opened(path) as con:
        return write_path.start_run(
            con, job="test", model="m0", task="t", dataset=None, params={}, params_hash=PH,
            seed=0, device="cpu",
        )  # fmt: skip


def ingest_batch(rng: np.random.Generator, clip_ids: list[int], run_id: str) -> tuple:
    """(explanations, original_probs, signal_probs) rows as jobs/ingest.py builds them,
    one clip without any mask (NULL blobs)."""
    rows_e, rows_o, rows_s = [], [], []
    for n, clip_id in enumerate(clip_ids):
        probs = rng.dirichlet(np.ones(4)).astype(np.float32)
        cls = int(probs.argmax())
        suf = None if n == 0 else rng.random(N_BINS) > 0.8
        comp = None if n == 0 else rng.random(N_BINS) > 0.4
        rows_e.append(
            ("m0", clip_id, PH, run_id, N_BINS, cls, float(probs[cls]),
             encode_responsibility(rng.random(N_BINS)),
             None if suf is None else pack_mask(suf), None if suf is None else int(suf.sum()),
             "no mask" if suf is None else None,
             None if comp is None else pack_mask(comp), None if comp is None else int(comp.sum()),
             "no mask" if comp is None else None,
             int(rng.integers(100, 900)), json.dumps({"sufficient": 0.25}), float(rng.random())),
        )  # fmt: skip
        rows_o.append(("m0", clip_id, probs.tolist(), cls, float(rng.random()), run_id))
        for kind in SIGNAL_KINDS:
            for target in ("m0", "m1", "m2"):
                p = rng.dirichlet(np.ones(4)).astype(np.float32)
                rows_s.append(
                    ("m0", clip_id, PH, kind, target, cls, p.tolist(), int(p.argmax()),
                     float(rng.random()), run_id)
                )  # fmt: skip
    return rows_e, rows_o, rows_s


def write(path: Path, run_id: str, rows: tuple, counters=None, errors=None) -> None:
    ingest.write_batch(path, run_id, counters or write_path.RunCounters(), *rows, errors or [])


def snapshot(path: Path) -> dict[str, list]:
    """Every row of every table the ingest job writes, in key order."""
    with store.opened(path, read_only=True) as con:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("explanations", "original_probs", "signal_probs", "runs", "job_errors")
        }


def f32(x: float) -> float:
    """x as a FLOAT column stores it."""
    return float(np.float32(x))


def test_stored_rows_equal_what_was_offered(wh_path: Path) -> None:
    run_id = start(wh_path)
    rows_e, rows_o, rows_s = ingest_batch(np.random.default_rng(1), [1, 2, 3], run_id)
    write(wh_path, run_id, (rows_e, rows_o, rows_s))
    with store.opened(wh_path, read_only=True) as con:
        cols = ", ".join(ingest.EXPLANATION_COLUMNS)
        got = con.execute(f"SELECT {cols} FROM explanations ORDER BY clip_id").fetchall()
        got_o = con.execute(
            f"SELECT {', '.join(ingest.ORIGINAL_COLUMNS)} FROM original_probs ORDER BY clip_id"
        ).fetchall()
        got_s = con.execute(
            f"SELECT {', '.join(ingest.SIGNAL_COLUMNS)} FROM signal_probs"
            " ORDER BY clip_id, kind, target_model"
        ).fetchall()
    assert len(got) == 3 and len(got_o) == 3 and len(got_s) == 27
    for offered, stored in zip(rows_e, got, strict=True):
        expect = list(offered)
        expect[6] = f32(offered[6])  # orig_conf is a FLOAT
        assert stored[:3] == offered[:3] and str(stored[3]) == run_id
        assert list(stored[4:]) == expect[4:]
    # blobs byte for byte, the NULL masks of the first clip included
    assert [r[7] for r in got] == [r[7] for r in rows_e]
    assert got[0][8] is None and got[0][11] is None
    assert got[1][8] == rows_e[1][8] and got[2][11] == rows_e[2][11]
    for offered, stored in zip(rows_o, got_o, strict=True):
        assert stored[:2] == offered[:2] and stored[3] == offered[3]
        assert stored[2] == offered[2]  # float32 values, stored exactly in FLOAT[]
        assert stored[4] == f32(offered[4]) and str(stored[5]) == run_id
    offered_s = sorted(rows_s, key=lambda r: (r[1], r[3], r[4]))
    for offered, stored in zip(offered_s, got_s, strict=True):
        assert stored[:6] == offered[:6] and stored[6] == offered[6] and stored[7] == offered[7]
        assert stored[8] == f32(offered[8]) and str(stored[9]) == run_id


def test_the_arrow_path_stores_what_executemany_stored(tmp_path: Path) -> None:
    """Every job's table, its awkward values included (NaN, NULL, empty lists, a column
    named `class`): the new path stores exactly what one executemany per table did."""
    rng = np.random.default_rng(2)
    paths = [store.init(tmp_path / f"{name}.duckdb")[0] for name in ("old", "new")]
    run_ids = [start(p) for p in paths]
    rid = "00000000-0000-4000-8000-000000000001"  # the rows carry their own run id
    composite = dict.fromkeys(compose._COLUMNS)
    composite.update(
        model="m0", dataset="d", params_hash=PH, seed=3, run_id=rid, candidates=[4, 5],
        members=[], n_candidates=2, n_composed=0, n_empty=1, n_samples=0, sample_rate=16000,
        queries=0, seconds=0.5, reason="no candidate alone keeps the class",
    )  # fmt: skip
    composite["class"] = 1
    tables = [
        write_path.Rows(
            "explanations", ingest.EXPLANATION_COLUMNS, ingest_batch(rng, [7, 8], rid)[0]
        ),
        write_path.Rows(
            "model_probes", probes.PROBE_COLUMNS,
            [("m0", "silence", 16000, [math.nan, math.nan], None, None, rid),
             ("m0", "noise-60dbfs", 16000, [0.25, 0.75], 1, 0.811, rid)],
        ),
        write_path.Rows(
            "transcripts", asr.TRANSCRIPT_COLUMNS,
            [("pocketsphinx", 7, "", "", "original", "hello there", 0.1, rid),
             ("pocketsphinx", 7, "m0", PH, "sufficient", "", 0.2, rid)],
        ),
        write_path.Rows("signal_stoi", asr.STOI_COLUMNS, [("m0", 7, PH, "sufficient", None, rid),
                                                    ("m0", 7, PH, "complete", 0.75, rid)]),
        write_path.Rows(
            "label_transfers", label_transfer.TRANSFER_COLUMNS,
            [("m0", 7, PH, 3, 1, "sufficient", rid, 8001, 120, [0.9, 0.1], 0, [0.2, 0.8], 1)],
        ),
        write_path.Rows(
            "composites", compose._COLUMNS, [tuple(composite[c] for c in compose._COLUMNS)]
        ),
    ]  # fmt: skip
    with store.opened(paths[0]) as con, store.transaction(con):
        for t in tables:
            cols = ", ".join(f'"{c}"' for c in t.columns)
            marks = ", ".join("?" * len(t.columns))
            con.executemany(f"INSERT OR IGNORE INTO {t.table} ({cols}) VALUES ({marks})", t.rows)
    write_path.write_batch(paths[1], tables, run_ids[1], write_path.RunCounters())

    def rows(path: Path, table: str) -> str:
        with store.opened(path, read_only=True) as con:
            # repr: NaN compares unequal to itself, its text does not
            return repr(con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall())

    for t in tables:
        assert rows(paths[1], t.table) == rows(paths[0], t.table), t.table
        assert rows(paths[1], t.table) != "[]"


def test_columns_are_matched_by_name_not_position(wh_path: Path) -> None:
    run_id = start(wh_path)
    cols = probes.PROBE_COLUMNS[::-1]
    row = ("m0", "silence", 16000, [0.5, 0.5], 0, 1.0, run_id)[::-1]
    write_path.write_batch(
        wh_path, [write_path.Rows("model_probes", cols, [row])], run_id, write_path.RunCounters()
    )
    with store.opened(wh_path, read_only=True) as con:
        got = con.execute("SELECT model, probe, n_samples, top1 FROM model_probes").fetchall()
    assert got == [("m0", "silence", 16000, 0)]


def test_a_batch_offered_twice_leaves_the_stored_rows_unchanged(wh_path: Path) -> None:
    run_id = start(wh_path)
    rng = np.random.default_rng(3)
    batch = ingest_batch(rng, [1, 2], run_id)
    write(wh_path, run_id, batch)
    before = snapshot(wh_path)
    write(wh_path, run_id, batch)  # the same rows again
    again = ingest_batch(rng, [1, 2], run_id)  # same keys, other values
    write(wh_path, run_id, again)
    after = snapshot(wh_path)
    for table in ("explanations", "original_probs", "signal_probs"):
        assert after[table] == before[table], table


def test_of_rows_sharing_a_key_in_one_batch_the_first_is_kept(wh_path: Path) -> None:
    """As executemany did: the first row offered with a key is stored, later ones skipped."""
    run_id = start(wh_path)
    first = ("m0", "silence", 16000, [0.5, 0.5], 0, 1.0, run_id)
    second = ("m0", "silence", 16000, [0.25, 0.75], 1, 0.5, run_id)
    table = ingest.probe_table([first, second, first])
    write_path.write_batch(wh_path, [table], run_id, write_path.RunCounters())
    with store.opened(wh_path, read_only=True) as con:
        assert con.execute("SELECT probs, top1 FROM model_probes").fetchall() == [([0.5, 0.5], 0)]


def _counters(clips: int) -> write_path.RunCounters:
    return write_path.RunCounters(clips_done=clips, queries=10 * clips)


@pytest.mark.parametrize("failure", ["constraint", "bad row", "run update"])
def test_a_batch_failing_midway_stores_none_of_its_rows(
    wh_path: Path, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(wh_path)
    rng = np.random.default_rng(4)
    write(wh_path, run_id, ingest_batch(rng, [1, 2], run_id), _counters(2))
    before = snapshot(wh_path)
    rows_e, rows_o, rows_s = ingest_batch(rng, [3, 4], run_id)
    errors = [dict(model="m0", clip_id=4, stage="search", error="boom")]
    if failure == "constraint":  # the last table's last row breaks NOT NULL
        rows_s[-1] = (*rows_s[-1][:6], None, *rows_s[-1][7:])
        raised: type[BaseException] = duckdb.ConstraintException
    elif failure == "bad row":  # a row of the wrong width, after two tables went in
        rows_s[-1] = rows_s[-1][:-1]
        raised = ValueError
    else:  # everything inserted, then the last statement of the batch fails

        def broken(*_args, **_kwargs):
            raise RuntimeError("injected")

        monkeypatch.setattr(write_path, "update_run", broken)
        raised = RuntimeError
    with pytest.raises(raised):
        write(wh_path, run_id, (rows_e, rows_o, rows_s), _counters(4), errors)
    assert snapshot(wh_path) == before  # no row of the batch, in any table; the first intact
    assert [r[1] for r in before["explanations"]] == [1, 2]
    monkeypatch.undo()
    write(wh_path, run_id, ingest_batch(rng, [3, 4], run_id), _counters(4))  # the file is fine
    with store.opened(wh_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM explanations").fetchall() == [(4,)]
        assert con.execute("SELECT clips_done FROM runs").fetchall() == [(4,)]


def test_errors_and_counters_are_written_with_the_batch(wh_path: Path) -> None:
    run_id = start(wh_path)
    errors = [dict(model="m1", clip_id=1, stage="evaluate", error="nan")]
    write(
        wh_path, run_id, ingest_batch(np.random.default_rng(5), [1], run_id), _counters(1), errors
    )
    with store.opened(wh_path, read_only=True) as con:
        assert con.execute("SELECT model, clip_id, stage FROM job_errors").fetchall() == [
            ("m1", 1, "evaluate")
        ]
        assert con.execute("SELECT clips_done, queries FROM runs").fetchall() == [(1, 10)]


# --- the transaction helper ---------------------------------------------------------------


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v VARCHAR NOT NULL)")
    yield con
    con.close()


def test_transaction_commits_the_block(con) -> None:
    with store.transaction(con):
        con.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(2,)]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_transaction_rolls_back_and_reraises(con, error: type[BaseException]) -> None:
    con.execute("INSERT INTO t VALUES (1, 'kept')")
    with pytest.raises(error), store.transaction(con):
        con.execute("INSERT INTO t VALUES (2, 'gone')")
        con.execute("UPDATE t SET v = 'changed' WHERE k = 1")
        raise error()
    assert con.execute("SELECT * FROM t").fetchall() == [(1, "kept")]
    with store.transaction(con):  # no transaction was left open
        con.execute("INSERT INTO t VALUES (3, 'next')")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(2,)]


def test_transaction_rolls_back_after_a_failed_statement(con) -> None:
    with pytest.raises(duckdb.ConstraintException), store.transaction(con):
        con.execute("INSERT INTO t VALUES (1, 'a')")
        con.execute("INSERT INTO t VALUES (2, NULL)")
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(0,)]


def test_a_failed_commit_raises_its_own_error(con) -> None:
    """DuckDB rolls back a COMMIT that fails; the helper reports the commit's error."""
    other = con.cursor()
    with pytest.raises(duckdb.TransactionException, match="commit"), store.transaction(other):
        other.execute("INSERT INTO t VALUES (1, 'theirs')")
        con.execute("INSERT INTO t VALUES (1, 'mine')")  # commits first
    assert con.execute("SELECT * FROM t").fetchall() == [(1, "mine")]


def test_insert_rows_keeps_every_row_of_a_table_without_a_key(tmp_path: Path) -> None:
    """A table without a primary key takes a plain INSERT (every row, duplicates too); a
    keyed one skips repeats, the first offered winning; an empty Rows skips only itself."""
    with duckdb.connect(str(tmp_path / "k.duckdb")) as con:
        con.execute("CREATE TABLE free (a INTEGER, b VARCHAR)")
        con.execute("CREATE TABLE keyed (k INTEGER PRIMARY KEY, v VARCHAR)")
        write_path.insert_rows(con, [
            write_path.Rows("keyed", ("k", "v"), []),
            write_path.Rows("free", ("a", "b"), [(1, "x"), (1, "x"), (2, "y")]),
            write_path.Rows("keyed", ("v", "k"), [("a", 1), ("b", 1), ("c", 2)]),
        ])  # fmt: skip
        assert con.execute("SELECT * FROM free ORDER BY ALL").fetchall() == [
            (1, "x"), (1, "x"), (2, "y")
        ]  # fmt: skip
        assert con.execute("SELECT * FROM keyed ORDER BY k").fetchall() == [(1, "a"), (2, "c")]
        with pytest.raises(ValueError, match=r"free: every row must have 2 values \('a', 'b'\)"):
            write_path.insert_rows(con, [write_path.Rows("free", ("a", "b"), [(1, "x"), (2,)])])


def test_signal_probs_keep_their_natural_key_without_an_index(wh_path: Path) -> None:
    """signal_probs has no primary-key index (migration 0007); the writer keeps its key:
    a batch overlapping the stored clips adds only the new clips' rows, and of two rows
    offered with one key in one batch the first is stored."""
    with store.opened(wh_path, read_only=True) as con:
        indexed = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'signal_probs'"
            " AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()[0]
    assert indexed == 0
    run_id = start(wh_path)
    rng = np.random.default_rng(5)
    write(wh_path, run_id, ingest_batch(rng, [1, 2], run_id))
    before = snapshot(wh_path)["signal_probs"]
    overlap = ingest_batch(rng, [2, 3], run_id)  # clip 2 again, with other values
    write(wh_path, run_id, overlap)
    after = snapshot(wh_path)["signal_probs"]
    added = [r for r in after if r not in before]
    assert {r[1] for r in added} == {3} and len(after) == len(before) + len(added)
    assert [r for r in after if r[1] != 3] == before
    twice = [("m0", 9, PH, "sufficient", "m1", 0, [0.75, 0.25], 0, 0.8, run_id),
             ("m0", 9, PH, "sufficient", "m1", 1, [0.25, 0.75], 1, 0.8, run_id)]  # fmt: skip
    write(wh_path, run_id, ([], [], twice))
    with store.opened(wh_path, read_only=True) as con:
        stored = con.execute("SELECT probs FROM signal_probs WHERE clip_id = 9").fetchall()
    assert stored == [([0.75, 0.25],)]


def test_arrow_table_refuses_rows_of_unequal_length() -> None:
    table = write_path.arrow_table(write_path.Rows("t", ("a", "b"), [(1, "x"), (2, "y")]))
    assert table.column_names == ["a", "b"] and table.to_pylist()[1] == {"a": 2, "b": "y"}
    with pytest.raises(ValueError):  # not cut to the shortest row: a value would be lost
        write_path.arrow_table(write_path.Rows("t", ("a", "b"), [(1, "x", "lost"), (2, "y")]))
