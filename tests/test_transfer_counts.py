"""transfer_counts: the per-cell counts the α and β views read instead of scanning
signal_probs (src/sigwarehouse/transfer_counts.py).

Properties: rows written by sigwarehouse's writer are counted in the same transaction,
exactly as a plain Python tally counts them (tests/reference.py), entropies sitting on
β's bound or one float32 step either side included; β read from the counts (ε on the
grid) and from the rows (ε off it) both equal β computed by hand; a batch offered twice
counts once; rows changed by hand are recounted by `sigwh sql --write`, and `sigwh info`
warns of counts that disagree with the rows until `sigwh recount` mends them.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest
from reference import stored_transfer_counts, tally_transfer_counts
from sharing import copy_of, sigwh
from small_warehouse import PARAMS_HASH

from sigwarehouse import store
from sigwarehouse.store import sql_files, write_path

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

PLANTED = "0123456789abcdef"  # a second parameter set, holding the planted signals
COLUMNS = ("source_model", "clip_id", "params_hash", "kind", "target_model", "source_class",
           "probs", "top1", "entropy_bits", "run_id")  # fmt: skip


def _near_bounds(n_classes: int) -> list[float]:
    """Entropies on β's bound at a few grid steps and one float32 step either side, zero,
    and log2(n) with the float32 just above it (a rounding above the most there is)."""
    most = math.log2(n_classes)
    out = [0.0, float(np.float32(most)), float(np.nextafter(np.float32(most), np.float32(9)))]
    for j in (1, 10, 25, 37, 50, 75, 99, 100):
        b = np.float32(j / 100 * most)
        out += [
            float(b),
            float(np.nextafter(b, np.float32(0))),
            float(np.nextafter(b, np.float32(9))),
        ]
    return out


def _planted_rows(con: duckdb.DuckDBPyConnection, run: str) -> list[tuple]:
    """One row per explanation of PLANTED, kind and target of the source's task, whose
    entropies cycle through _near_bounds and whose top-1 is the source's class or not."""
    rng = random.Random(3)
    explained = con.execute(
        "SELECT e.model, e.clip_id, e.orig_class, len(t.labels), list(o.model ORDER BY o.model)"
        " FROM explanations e JOIN models m ON m.model = e.model JOIN tasks t USING (task)"
        " JOIN models o ON o.task = m.task WHERE e.params_hash = ? GROUP BY ALL ORDER BY ALL",
        [PLANTED],
    ).fetchall()
    rows, at = [], 0
    for model, clip, source_class, n, targets in explained:
        values = _near_bounds(n)
        for kind in ("sufficient", "complete"):
            for target in targets:
                top1 = source_class if rng.random() < 0.6 else (source_class + 1) % n
                probs = [1.0 / n] * n  # not read by the counts
                rows.append((model, clip, PLANTED, kind, target, source_class, probs, top1,
                             values[at % len(values)], run))  # fmt: skip
                at += 1
    return rows


@pytest.fixture
def planted(small_filled, tmp_path: Path) -> Path:
    """A copy of the small warehouse with a second parameter set whose explanations copy
    the first's and whose signals, written by sigwarehouse's writer, sit on β's bounds."""
    return _plant(copy_of(small_filled[0], tmp_path))


def _plant(path: Path, parts: int = 1) -> Path:
    """planted's work on the file at path; the writer is given the signals as `parts`
    Rows of signal_probs in one call (each counted from its own temporary table)."""
    run = str(uuid.uuid4())
    with store.opened(path) as con, store.transaction(con):
        con.execute(
            "INSERT INTO runs (run_id, job, params_hash, seed, code_version, started_at,"
            " status) VALUES (?, 'ingest', ?, 0, 'test', now(), 'done')",
            [run, PLANTED],
        )
        con.execute("INSERT INTO freqrex_params VALUES (?, '{}')", [PLANTED])
        con.execute(
            "INSERT INTO explanations SELECT * REPLACE (?::VARCHAR AS params_hash,"
            " ?::UUID AS run_id) FROM explanations WHERE params_hash = ?",
            [PLANTED, run, PARAMS_HASH],
        )
        rows = _planted_rows(con, run)
        # the first explanation's row goes: its signals count in neither n_empty nor the
        # non-empty share (mask 'unknown'), as where a foreign writer stored no explanation
        con.execute(
            "DELETE FROM explanations WHERE params_hash = ? AND model = ? AND clip_id = ?",
            [PLANTED, rows[0][0], rows[0][1]],
        )
        write_path.insert_rows(
            con, [write_path.Rows("signal_probs", COLUMNS, rows[i::parts]) for i in range(parts)]
        )
    return path


def _beta_by_hand(con: duckdb.DuckDBPyConnection, eps: float) -> dict[tuple, tuple]:
    """(kind, source, target) -> (n, β, n with an empty mask, β over non-empty masks) of
    PLANTED, from the rows: top-1 is the source's class and min(entropy, log2 n) <=
    float32(eps · log2 n). A signal without an explanation row is neither empty nor not."""
    cells = defaultdict(list)
    for kind, source, target, same, bits, n, size in con.execute(
        "SELECT s.kind, s.source_model, s.target_model, s.top1 = s.source_class,"
        " s.entropy_bits, len(t.labels),"
        " CASE s.kind WHEN 'sufficient' THEN e.sufficient_size ELSE e.complete_size END"
        " FROM signal_probs s JOIN models m ON m.model = s.source_model"
        " JOIN tasks t USING (task) LEFT JOIN explanations e ON e.model = s.source_model"
        " AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash"
        " WHERE s.params_hash = ? AND s.kind IN ('sufficient', 'complete')",
        [PLANTED],
    ).fetchall():
        most = math.log2(n)
        ok = same and min(np.float32(bits), np.float32(most)) <= np.float32(eps * most)
        cells[(kind, source, target)].append((ok, size))
    out = {}
    for key, signals in cells.items():
        kept = [ok for ok, size in signals if size is not None and size > 0]
        out[key] = (
            len(signals),
            sum(ok for ok, _ in signals) / len(signals),
            sum(size == 0 for _, size in signals),
            sum(kept) / len(kept) if kept else None,
        )
    return out


def test_the_writer_counts_entropies_on_the_bound_as_a_plain_tally_does(planted: Path) -> None:
    con = duckdb.connect(str(planted), read_only=True)
    try:
        stored, tally = stored_transfer_counts(con), tally_transfer_counts(con)
        levels = {key[-1] for key in tally if key[1] == PLANTED}
    finally:
        con.close()
    assert stored == tally
    # the planted values reach both ends of the grid and steps either side of a bound
    assert {0, 1, 2, 10, 11, 25, 26, 37, 38, 50, 51, 99, 100} <= levels


# 1 + 1e-10 is off the grid (the rows are read) but its bound rounds to log2(n) as a FLOAT:
# an entropy a rounding above log2(n) counts there only as log2(n)
@pytest.mark.parametrize("eps", [0.01, 0.25, 0.37, 0.5, 0.99, 1.0, 0.375, 0.123456, 1 + 1e-10])
def test_beta_on_and_off_the_grid_equals_beta_by_hand(planted: Path, eps: float) -> None:
    """On the grid (k/100) β is read from the counts, off it from the rows: both exact."""
    con = store.connect(planted, read_only=True)
    try:
        expected = _beta_by_hand(con, eps)
        rows = con.execute(
            "SELECT kind, source_model, target_model, n_signals, beta, n_empty, beta_nonempty"
            " FROM beta_transferability_for(?, ?)",
            [eps, PLANTED],
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == len(expected) > 0
    for kind, source, target, n, beta, n_empty, nonempty in rows:
        n_hand, beta_hand, empty_hand, nonempty_hand = expected[(kind, source, target)]
        assert (n, beta, n_empty) == (
            n_hand,
            pytest.approx(beta_hand, rel=1e-12, abs=0),
            empty_hand,
        )
        assert nonempty == (None if nonempty_hand is None else pytest.approx(nonempty_hand))


def test_alpha_counts_signals_without_an_explanation_in_neither_share(planted: Path) -> None:
    """α is β at ε = 1 (tests/test_views.py); here its silence columns, by hand, with
    empty, non-empty and explanation-less signals in one parameter set."""
    con = store.connect(planted, read_only=True)
    try:
        expected = _beta_by_hand(con, 1.0)
        rows = con.execute(
            "SELECT kind, source_model, target_model, n_signals, alpha, n_empty, alpha_nonempty"
            " FROM alpha_transferability_for(?)",
            [PLANTED],
        ).fetchall()
        unknown = con.execute(
            "SELECT sum(n) FROM transfer_counts WHERE params_hash = ? AND mask = 'unknown'",
            [PLANTED],
        ).fetchone()[0]
    finally:
        con.close()
    assert unknown > 0 and len(rows) == len(expected)
    for kind, source, target, n, alpha, n_empty, nonempty in rows:
        n_hand, alpha_hand, empty_hand, nonempty_hand = expected[(kind, source, target)]
        assert (n, alpha, n_empty) == (n_hand, pytest.approx(alpha_hand), empty_hand)
        assert nonempty == (None if nonempty_hand is None else pytest.approx(nonempty_hand))


def test_signals_given_as_several_rows_in_one_call_are_all_stored_and_counted(
    small_filled, planted: Path, tmp_path: Path
) -> None:
    path = _plant(copy_of(small_filled[0], tmp_path / "parts"), parts=3)
    rows = "SELECT * EXCLUDE (run_id) FROM signal_probs ORDER BY ALL"
    with store.opened(planted, read_only=True) as con:
        in_one = con.execute(rows).fetchall()  # the same signals given as one Rows
    with store.opened(path, read_only=True) as con:
        assert con.execute(rows).fetchall() == in_one
        assert stored_transfer_counts(con) == tally_transfer_counts(con)
        temporary = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary")
        assert temporary.fetchone()[0] == 0  # each part's table dropped once counted


def test_signal_rows_without_their_key_columns_are_refused(planted: Path) -> None:
    with store.opened(planted) as con:
        for missing in ("kind", "clip_id"):
            columns = tuple(c for c in COLUMNS if c != missing)
            row = tuple(0 for _ in columns)
            with pytest.raises(ValueError, match=r"signal_probs: rows must carry the key col"):
                write_path.insert_rows(con, [write_path.Rows("signal_probs", columns, [row])])


def test_a_batch_offered_twice_is_counted_once(planted: Path) -> None:
    with store.opened(planted) as con:
        before = stored_transfer_counts(con)
        again = _planted_rows(con, str(uuid.uuid4()))
        with store.transaction(con):
            write_path.insert_rows(con, [write_path.Rows("signal_probs", COLUMNS, again)])
        assert stored_transfer_counts(con) == before


def test_rows_changed_by_hand_are_recounted_or_warned_of(planted: Path) -> None:
    """`sigwh sql --write` recounts after its statements; a foreign writer's change is
    reported by `sigwh info` until `sigwh recount` counts the rows afresh."""
    delete = "DELETE FROM signal_probs WHERE source_model = 'm1' AND kind = 'complete'"
    result = sigwh(planted, "sql", "--write", "--yes", delete)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(planted), read_only=True)
    try:
        assert stored_transfer_counts(con) == tally_transfer_counts(con)
        assert not any(k[0] == "m1" and k[2] == "complete" for k in stored_transfer_counts(con))
    finally:
        con.close()
    assert "disagrees" not in sigwh(planted, "info").output

    con = duckdb.connect(str(planted))  # another program, writing past sigwarehouse
    try:
        con.execute("DELETE FROM signal_probs WHERE source_model = 'm2'")
    finally:
        con.close()
    out = sigwh(planted, "info").output
    assert "transfer_counts disagrees with the rows of signal_probs" in out
    assert "sigwh recount" in out
    result = sigwh(planted, "recount")
    assert result.exit_code == 0 and "signals in" in result.output, result.output
    assert "disagrees" not in sigwh(planted, "info").output
    con = duckdb.connect(str(planted), read_only=True)
    try:
        assert stored_transfer_counts(con) == tally_transfer_counts(con)
    finally:
        con.close()


def test_migration_0008_counts_an_older_file_all_or_nothing(
    planted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse made before the counts (version 7) gets them from its rows in one
    transaction: interrupted after its last statement, it leaves no table behind, and
    `sigwh migrate` then counts as a plain tally does."""
    con = duckdb.connect(str(planted))
    try:
        con.execute("DROP TABLE transfer_counts")
        con.execute("DELETE FROM schema_migrations WHERE version = 8")
    finally:
        con.close()
    real = store.migrations()
    step = next(m for m in real if m.version == 8)
    broken = tmp_path / step.path.name
    broken.write_text(step.path.read_text() + "\nSELECT error('interrupted');\n")
    monkeypatch.setattr(
        sql_files, "migrations",
        lambda: [m if m.version != 8 else type(m)(m.version, m.name, broken) for m in real],
    )  # fmt: skip
    con = duckdb.connect(str(planted))
    try:
        with pytest.raises(store.WarehouseError, match="failed and was rolled back"):
            store.migrate(con)
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "transfer_counts" not in tables
    finally:
        con.close()
    monkeypatch.undo()
    result = sigwh(planted, "migrate")
    assert result.exit_code == 0 and "0008_transfer_counts" in result.output, result.output
    con = duckdb.connect(str(planted), read_only=True)
    try:
        assert stored_transfer_counts(con) == tally_transfer_counts(con) != {}
    finally:
        con.close()
