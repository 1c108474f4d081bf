"""`sigwh ingest` on the shipped zoo and evaluation clips, with real DuckDB files.

The spoof task (2 classes, 4 zoo models) with a few clips and a light parameter set keeps
this file to a few tens of seconds. Properties checked: stored masks keep their
definitions when re-run through the model (independently of the search code), the
cross-model matrix fills whatever the order of jobs (and models added later), reruns do
nothing, a SIGKILLed job resumes to exactly the rows of an uninterrupted run, two jobs
run at once, and bad models fail clearly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from light_params import ARGS as EXTRA
from light_params import PARAMS
from polling import LET_GO_EACH_BATCH, signal_after_first_batch
from sharing import sigwh

from sigwarehouse import catalog, clips, store
from sigwarehouse.audio import load_clip
from sigwarehouse.freqrex.spectral import unpack_mask
from sigwarehouse.jobs import ingest
from sigwarehouse.models.loader import load_classifier
from sigwarehouse.models.zoo import load_checkpoint, save_checkpoint
from sigwarehouse.records import task_models

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("ingest")

REPO = Path(__file__).resolve().parents[1]
TASK = "spoof"
DATASET = "spoof-eval"
PER_LABEL = 1  # clips of each label every model explains
N_CLIPS = 2 * PER_LABEL  # spoof has two labels
N_MODELS = 3  # of the task's zoo models, to keep the file quick


def _build(
    path: Path,
    catalog_dir: Path = REPO / "ingest",
    store_audio: bool = True,
    n_models: int = N_MODELS,
) -> Path:
    """A warehouse with the catalog, the spoof clips and only the first n_models spoof
    models (the first is the 1-D CNN, the fastest: the tests of processes use it alone)."""
    store.init(path)
    with store.opened(path) as con:
        catalog.sync(con, catalog_dir)
        clips.add_dataset(con, DATASET, store_audio=store_audio, progress=False)
        con.execute(
            "DELETE FROM models WHERE task = ? AND model NOT IN"
            " (SELECT model FROM models WHERE task = ? ORDER BY model LIMIT ?)",
            [TASK, TASK, n_models],
        )
    return path


def _models(path: Path) -> list[str]:
    with store.opened(path, read_only=True) as con:
        return [m.model for m in task_models(con, TASK)]


def _ingest(path: Path, model: str) -> ingest.IngestSummary:
    with store.opened(path, read_only=True) as con:
        plan = ingest.plan_ingest(con, model, PARAMS, dataset=DATASET, per_label=PER_LABEL)
    return ingest.run_ingest(path, plan, clips_per_batch=2)


def _rows(path: Path) -> dict[str, list[tuple]]:
    """Every stored fact (run ids left out: they differ between runs by design)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "explanations": con.execute(
                "SELECT model, clip_id, params_hash, n_bins, orig_class, sufficient_mask,"
                " complete_mask, complete_reason FROM explanations ORDER BY ALL"
            ).fetchall(),
            "original_probs": con.execute(
                "SELECT model, clip_id, top1 FROM original_probs ORDER BY ALL"
            ).fetchall(),
            "signal_probs": con.execute(
                "SELECT source_model, clip_id, kind, target_model, source_class, top1"
                " FROM signal_probs ORDER BY ALL"
            ).fetchall(),
            "transfer_counts": con.execute(
                "SELECT source_model, kind, target_model, dataset, mask, same_class, eps_level,"
                " n FROM transfer_counts ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


def _rows_of(path: Path, model: str) -> dict[str, list[tuple]]:
    """_rows of `model` alone: its explanations and answers, and its signals' answers on
    itself (what a warehouse holding only `model` stores, the same clips explained)."""
    target = {"signal_probs": 3, "transfer_counts": 2}  # the column of the target model
    return {
        table: [r for r in rows if r[0] == model and r[target.get(table, 0)] == model]
        for table, rows in _rows(path).items()
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every spoof zoo model ingested on the first N_CLIPS clips (the reference result)."""
    path = _build(tmp_path_factory.mktemp("ingested") / "warehouse.duckdb")
    for model in _models(path):
        summary = _ingest(path, model)
        assert summary.status == "done"
    return path


def test_every_model_sees_every_signal(ingested: Path) -> None:
    models = _models(ingested)
    con = duckdb.connect(str(ingested), read_only=True)
    n_expl = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
    assert n_expl == len(models) * N_CLIPS
    missing = con.execute(
        """
        SELECT e.model, e.clip_id, k.kind, m.model AS target
        FROM explanations e
        CROSS JOIN (VALUES ('sufficient'), ('complete'), ('inverse')) k(kind)
        CROSS JOIN models m
        WHERE m.task = ?
          AND (k.kind = 'sufficient' AND e.sufficient_mask IS NOT NULL
               OR k.kind <> 'sufficient' AND e.complete_mask IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM signal_probs s WHERE s.source_model = e.model
              AND s.clip_id = e.clip_id AND s.kind = k.kind AND s.target_model = m.model)
        """,
        [TASK],
    ).fetchall()
    runs = con.execute("SELECT status, clips_done, queries, code_version FROM runs").fetchall()
    con.close()
    assert missing == []
    assert [r[:2] for r in runs] == [("done", N_CLIPS)] * len(models)
    assert all(r[2] > 0 and r[3] for r in runs)


def test_stored_verdicts_hold_in_every_rendering_and_probabilities_reproduce(
    ingested: Path,
) -> None:
    """Zoo models: every stored mask's verdict in NumPy float64 and after a 16-bit WAV
    round trip, and every signal_probs row against a float64 rebuild (tests/reference)."""
    from reference import check_renderings

    con = duckdb.connect(str(ingested), read_only=True)
    try:
        labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
        refs = dict(
            (
                (m, (k, r))
                for m, k, r in con.execute("SELECT model, kind, ref FROM models").fetchall()
            )
        )
        checked = check_renderings(con, lambda m: load_classifier(*refs[m], labels))
    finally:
        con.close()
    assert checked["masks"] >= 4 and checked["probs"] >= 10


def test_stored_masks_keep_their_definitions_when_rerun(ingested: Path) -> None:
    """Re-run every stored mask through the model with plain numpy FFTs, not the engine."""
    con = duckdb.connect(str(ingested), read_only=True)
    labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
    refs = {
        m: (kind, ref)
        for m, kind, ref in con.execute(
            "SELECT model, kind, ref FROM models WHERE task = ?", [TASK]
        ).fetchall()
    }
    rows = con.execute(
        "SELECT model, clip_id, n_bins, orig_class, orig_conf, sufficient_mask, complete_mask"
        " FROM explanations ORDER BY model, clip_id"
    ).fetchall()
    waves = {c: load_clip(con, c) for c in {r[1] for r in rows}}
    con.close()
    delta = PARAMS.delta
    checked = 0
    for model, clip_id, n_bins, c, sigma, suf, comp in rows:
        clf = load_classifier(*refs[model], labels)
        spectrum = np.fft.rfft(waves[clip_id].astype(np.float64))
        assert spectrum.shape[0] == n_bins

        def probs(mask: np.ndarray, spectrum=spectrum, n=len(waves[clip_id]), clf=clf):
            x = np.fft.irfft(spectrum * mask, n=n).astype(np.float32)
            return clf(torch.from_numpy(x)[None])[0].numpy()

        if suf is not None:
            assert probs(unpack_mask(suf, n_bins)).argmax() == c
        if comp is not None:
            m = unpack_mask(comp, n_bins)
            p = probs(m)
            assert p.argmax() == c and p[c] >= delta * sigma - 1e-4
            assert probs(~m).argmax() != c
            checked += 1
    assert checked > 0, "no complete mask to check: the test proves too little"


def test_a_second_run_does_nothing(ingested: Path) -> None:
    before = _rows(ingested)
    with store.opened(ingested, read_only=True) as con:
        plans = [
            ingest.plan_ingest(con, m, PARAMS, dataset=DATASET, per_label=PER_LABEL)
            for m in _models(ingested)
        ]
    assert all(p.is_empty() for p in plans)  # probes included
    assert _rows(ingested) == before


def test_models_added_later_and_jobs_in_another_order_give_the_same_rows(
    ingested: Path, tmp_path: Path
) -> None:
    """The first model is explained while it is the only one known; the others arrive
    later and run in reverse order, each filling in its row and column of the matrix
    (the cross fill). Every row equals the reference's, made in order with all known."""
    path = _build(tmp_path / "late.duckdb")
    first, *later = _models(path)
    con = duckdb.connect(str(path))
    kept = con.execute("SELECT * FROM models WHERE model IN (SELECT unnest(?))", [later]).fetchall()
    con.execute("DELETE FROM models WHERE model IN (SELECT unnest(?::VARCHAR[]))", [later])
    con.close()
    _ingest(path, first)  # explains with only `first` known
    with store.opened(path) as con:  # the other models arrive
        con.executemany(f"INSERT INTO models VALUES ({', '.join('?' * len(kept[0]))})", kept)
    for model in reversed(later):
        summary = _ingest(path, model)
        assert summary.counters.extra.get("cross_filled") == N_CLIPS
    for table in ("signal_probs", "transfer_counts"):  # the cross fill counts its rows too
        assert _rows(path)[table] == _rows(ingested)[table]


def _sigwh(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), *args]


def test_sigkill_then_rerun_gives_exactly_the_uninterrupted_rows(
    ingested: Path, tmp_path: Path
) -> None:
    """One clip per transaction, killed after the first: the rerun ends with the rows of
    the uninterrupted reference run (`ingested`, the same clips and parameters)."""
    killed = _build(tmp_path / "killed.duckdb", n_models=1)
    model = _models(killed)[0]
    args = ["ingest", "--model", model, "--per-label", str(PER_LABEL), "--clips-per-batch", "1"]
    args += LET_GO_EACH_BATCH
    job = subprocess.Popen(
        _sigwh(killed, *args, *EXTRA), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = signal_after_first_batch(job, killed, "SELECT count(*) FROM explanations")
    job.wait()
    assert 1 <= done < N_CLIPS, "the job should have been killed part way"
    with store.opened(killed, read_only=True) as con:
        status = con.execute("SELECT status FROM runs").fetchall()
    assert status == [("running",)]
    rerun = subprocess.run(_sigwh(killed, *args, *EXTRA), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    reference = _rows_of(ingested, model)
    assert _rows(killed) == reference
    with store.opened(killed, read_only=True) as con:
        statuses = sorted(s for (s,) in con.execute("SELECT status FROM runs").fetchall())
    assert statuses == ["abandoned", "done"]


def test_ctrl_c_stops_cleanly_and_records_the_run_as_interrupted(tmp_path: Path) -> None:
    path = _build(tmp_path / "interrupted.duckdb", n_models=1)
    model = _models(path)[0]
    args = ["ingest", "--model", model, "--per-label", "4", "--clips-per-batch", "1", *EXTRA]
    args += LET_GO_EACH_BATCH
    job = subprocess.Popen(_sigwh(path, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    signal_after_first_batch(job, path, "SELECT count(*) FROM explanations", sig=signal.SIGINT)
    output = job.communicate(timeout=60)[0].decode()
    assert job.returncode == 130, output
    assert "interrupted: stored batches are kept" in output
    assert "Traceback" not in output
    with store.opened(path, read_only=True) as con:
        run = con.execute("SELECT status, clips_done FROM runs").fetchone()
        stored = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
    assert run == ("interrupted", stored) and 1 <= stored < 8


def test_two_jobs_at_once_and_reads_while_they_run(ingested: Path, tmp_path: Path) -> None:
    path = _build(tmp_path / "concurrent.duckdb", n_models=1)
    model = _models(path)[0]
    base = ["ingest", "--model", model, "--per-label", "2", "--clips-per-batch", "1", *EXTRA]
    jobs = [
        subprocess.Popen(_sigwh(path, *base, "--shard", f"{i}/2"), stderr=subprocess.PIPE)
        for i in range(2)
    ]
    reads = 0
    while any(j.poll() is None for j in jobs):  # `sigwh sql`, in this process: no start-up
        out = sigwh(path, "sql", "SELECT count(*) FROM explanations")
        assert out.exit_code == 0, out.output
        reads += 1
        time.sleep(0.2)  # the jobs need the file to write in between
    assert [j.wait() for j in jobs] == [0, 0], [j.stderr.read() for j in jobs]
    assert reads >= 1
    with store.opened(path, read_only=True) as con:
        left = ingest.plan_ingest(con, model, PARAMS, dataset=DATASET, per_label=2).clip_ids
        done = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
        statuses = con.execute("SELECT status FROM runs").fetchall()
    assert left == [] and done == 4
    assert statuses == [("done",), ("done",)]


def _catalog_with_first_model(tmp_path: Path, make_ref) -> Path:
    """A copy of the shipped catalog, spoof only, whose first spoof model's ref is
    replaced by make_ref(the original checkpoint path) -> new checkpoint path."""
    cat = tmp_path / "ingest"
    shutil.copytree(REPO / "ingest", cat)
    for other in (cat / "models").glob("*.toml"):
        if other.stem != TASK:
            other.unlink()
    for dataset in (cat / "datasets").glob("*.toml"):  # roots stay where the clips are
        text = dataset.read_text()
        root = next(line for line in text.splitlines() if line.startswith("root"))
        absolute = (REPO / "ingest" / "datasets" / root.split('"')[1]).resolve()
        dataset.write_text(text.replace(root, f'root = "{absolute}"'))
    models_toml = cat / "models" / f"{TASK}.toml"
    lines = models_toml.read_text().splitlines()
    refs = [i for i, line in enumerate(lines) if line.startswith("ref")]
    for n, i in enumerate(refs):  # absolute refs: the copy lives elsewhere
        original = (REPO / "ingest" / "models" / lines[i].split('"')[1]).resolve()
        lines[i] = f'ref = "{make_ref(original) if n == 0 else original}"'
    models_toml.write_text("\n".join(lines) + "\n")
    return cat


def test_a_model_that_cannot_load_fails_before_any_work(tmp_path: Path) -> None:
    def broken(original: Path) -> Path:
        path = tmp_path / original.name
        path.write_bytes(b"not a checkpoint")
        shutil.copy(original.with_suffix(".json"), path.with_suffix(".json"))
        return path

    path = _build(
        tmp_path / "broken.duckdb", catalog_dir=_catalog_with_first_model(tmp_path, broken)
    )
    first, second = _models(path)[:2]
    with pytest.raises(Exception, match=rf"model {first} .*could not be loaded"):
        _ingest(path, second)  # any job of the task loads every model of the task
    assert _rows(path)["explanations"] == []
    with store.opened(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_model_returning_nan_is_recorded_and_the_job_goes_on(tmp_path: Path) -> None:
    """A real zoo checkpoint with one weight set to NaN: every clip fails, the job ends."""

    def poisoned(original: Path) -> Path:
        network, meta = load_checkpoint(original)
        weight = next(p for p in network.parameters() if p.dim() >= 2)
        with torch.no_grad():
            weight.fill_(float("nan"))
        return save_checkpoint(tmp_path / original.name, network, meta)

    path = _build(
        tmp_path / "nan.duckdb", catalog_dir=_catalog_with_first_model(tmp_path, poisoned)
    )
    model = _models(path)[0]
    summary = _ingest(path, model)
    assert summary.status == "done"
    con = duckdb.connect(str(path), read_only=True)
    errors = con.execute("SELECT model, stage, error FROM job_errors").fetchall()
    stored = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
    run = con.execute("SELECT status, n_errors FROM runs").fetchone()
    con.close()
    assert len(errors) == 2 and all(e[0] == model and "non-finite" in e[2] for e in errors)
    assert stored == 0
    assert run == ("done", 2)


def test_views_on_real_rows_beta_at_one_is_alpha_and_silence_is_counted(ingested: Path) -> None:
    """β(1) = α and n_empty / alpha_nonempty on real model outputs (float32 softmax
    entropies), recomputed with numpy from signal_probs and the stored mask bits; and
    every model's probes are stored."""
    con = duckdb.connect(str(ingested), read_only=True)
    masks = {
        (m, c): (blob, n)
        for m, c, n, blob in con.execute(
            "SELECT model, clip_id, n_bins, sufficient_mask FROM explanations"
        ).fetchall()
    }
    cells: dict[tuple, list[tuple[bool, bool]]] = {}
    for source, clip, kind, target, c, probs in con.execute(
        "SELECT source_model, clip_id, kind, target_model, source_class, probs"
        " FROM signal_probs WHERE kind IN ('sufficient', 'complete')"
    ).fetchall():
        blob, n = masks[(source, clip)]
        empty = kind == "sufficient" and not np.unpackbits(np.frombuffer(blob, np.uint8))[:n].any()
        accepted = bool(np.argmax(np.asarray(probs, dtype=np.float64)) == c)
        cells.setdefault((kind, source, target), []).append((accepted, empty))
    rows = con.execute(
        "SELECT a.kind, a.source_model, a.target_model, a.alpha, b.beta, a.n_empty,"
        " a.alpha_nonempty FROM alpha_transferability a JOIN beta_transferability(1.0) b"
        " USING (kind, source_model, target_model, params_hash)"
    ).fetchall()
    probes = con.execute("SELECT model, count(*) FROM model_probes GROUP BY ALL").fetchall()
    con.close()
    assert len(rows) == len(cells)
    for kind, source, target, alpha, beta, n_empty, alpha_nonempty in rows:
        cell = cells[(kind, source, target)]
        kept = [a for a, e in cell if not e]
        assert alpha == pytest.approx(np.mean([a for a, _ in cell]))
        assert beta == pytest.approx(alpha)
        assert n_empty == sum(e for _, e in cell)
        assert alpha_nonempty == (pytest.approx(np.mean(kept)) if kept else None)
    assert sorted(probes) == [(m, 2) for m in _models(ingested)]


def test_threads_option_sets_torchs_cpu_threads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sigwarehouse.cli import app

    runner = CliRunner()
    path = _build(tmp_path / "threads.duckdb")
    model = _models(path)[0]
    before = torch.get_num_threads()
    try:
        for wanted in (1, 3):
            args = ["--warehouse", str(path), "ingest", "--model", model, "--dry-run"]
            result = runner.invoke(app, [*args, "--threads", str(wanted)])
            assert result.exit_code == 0, result.output
            assert torch.get_num_threads() == wanted
        result = runner.invoke(app, [*args, "--threads", "0"])
        assert result.exit_code != 0 and "--threads" in result.output
    finally:
        torch.set_num_threads(before)


def test_cpu_threads_wait_passively_unless_the_user_says_otherwise() -> None:
    code = "import os, sigwarehouse; print(os.environ['OMP_WAIT_POLICY'])"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.stdout.strip() == "PASSIVE"
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    own = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert own.stdout.strip() == "ACTIVE"


def _entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits per row, written out (0 log 0 = 0)."""
    p = probs.astype(np.float64)
    logs = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


def test_stored_derived_numbers_match_a_direct_computation(ingested: Path) -> None:
    """Columns derived at write time (top1, entropy_bits, sizes, n_bins, minimality's
    bin counts) equal what plain numpy computes from the stored probabilities, masks and
    audio."""
    con = duckdb.connect(str(ingested), read_only=True)
    try:
        for table in ("original_probs", "signal_probs"):
            rows = con.execute(f"SELECT probs, top1, entropy_bits FROM {table}").fetchall()
            assert rows
            probs = np.array([r[0] for r in rows], dtype=np.float32)
            np.testing.assert_array_equal([r[1] for r in rows], probs.argmax(axis=1))
            np.testing.assert_allclose(
                [r[2] for r in rows], _entropy_bits(probs), rtol=1e-5, atol=1e-6
            )
        expl = con.execute(
            "SELECT n_bins, sufficient_mask, sufficient_size, complete_mask, complete_size,"
            " minimality, clip_id FROM explanations"
        ).fetchall()
        lengths = {clip_id: len(load_clip(con, clip_id)) for *_, clip_id in expl}
    finally:
        con.close()
    assert expl
    for n_bins, s_mask, s_size, c_mask, c_size, minimality, clip_id in expl:
        assert n_bins == lengths[clip_id] // 2 + 1  # rfft bins of the clip
        figures = json.loads(minimality)
        for blob, size, prefix in ((s_mask, s_size, "sufficient"), (c_mask, c_size, "complete")):
            if blob is None:
                continue
            mask = unpack_mask(blob, n_bins)
            kept = int(mask.sum())
            assert size == kept
            # the search's variables are bands of bins_per_variable bins (clips of 2 s and
            # more hold several): each is kept whole or removed whole, and the figures
            # count kept variables
            width = figures["bins_per_variable"]
            variable = np.arange(n_bins) // width
            kept_vars = np.unique(variable[mask])
            assert mask[np.isin(variable, kept_vars)].all()
            checked, removable = figures[f"{prefix}_checked"], figures[f"{prefix}_removable"]
            n_vars = kept_vars.size
            assert checked == n_vars or (n_vars > PARAMS.per_bin_limit and checked == 64)
            if kept == 0:  # the empty signal keeps the class: nothing to remove
                assert removable is None
            else:
                assert 0.0 <= removable <= 1.0


def test_models_that_explain_nothing_answer_the_explained_clips(tmp_path: Path) -> None:
    """After one model's job, every other model of the task has its probabilities on the
    clips that job explained (a dear model left to answer still gets an accuracy), equal
    to a direct call of that model on the clip's audio; model_accuracy counts them."""
    path = _build(tmp_path / "warehouse.duckdb", n_models=2)
    first, second = _models(path)
    assert _ingest(path, first).status == "done"
    con = duckdb.connect(str(path), read_only=True)
    try:
        labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
        kind, ref = con.execute("SELECT kind, ref FROM models WHERE model = ?", [second]).fetchone()
        rows = con.execute("SELECT clip_id FROM explanations ORDER BY 1").fetchall()
        explained = [c for (c,) in rows]
        stored = con.execute(
            "SELECT clip_id, probs FROM original_probs WHERE model = ? ORDER BY 1", [second]
        ).fetchall()
        audio = [load_clip(con, c) for c in explained]
        accuracy = con.execute(
            "SELECT n_clips FROM model_accuracy WHERE model = ?", [second]
        ).fetchall()
    finally:
        con.close()
    assert [c for c, _ in stored] == explained and len(explained) == N_CLIPS
    clf = load_classifier(kind, ref, labels)
    for (_, probs), wave in zip(stored, audio, strict=True):
        direct = clf(torch.from_numpy(np.asarray(wave, dtype=np.float32))[None])
        np.testing.assert_allclose(probs, direct.float().numpy()[0], atol=1e-5)
    assert accuracy == [(N_CLIPS,)]


def test_two_jobs_with_the_same_plan_leave_the_rows_of_one(ingested: Path, tmp_path: Path) -> None:
    """Overlapping work: two processes run the very same plan at once; every row is
    offered twice, and the file ends with exactly the rows of one uninterrupted run."""
    path = _build(tmp_path / "overlap.duckdb", n_models=1)
    model = _models(path)[0]
    args = ["ingest", "--model", model, "--per-label", str(PER_LABEL), "--clips-per-batch", "1"]
    jobs = [subprocess.Popen(_sigwh(path, *args, *EXTRA), stderr=subprocess.PIPE) for _ in range(2)]
    assert [j.wait() for j in jobs] == [0, 0], [j.stderr.read() for j in jobs]
    reference = _rows_of(ingested, model)
    assert _rows(path) == reference


def test_transfer_counts_equal_a_tally_of_the_stored_rows(ingested: Path) -> None:
    """The per-cell counts the α and β views read, kept by the writer batch by batch,
    equal a plain Python tally of the rows (tests/reference.py)."""
    from reference import stored_transfer_counts, tally_transfer_counts

    con = duckdb.connect(str(ingested), read_only=True)
    try:
        tally, stored = tally_transfer_counts(con), stored_transfer_counts(con)
    finally:
        con.close()
    assert sum(tally.values()) > 0 and stored == tally


def test_a_changed_clip_takes_its_signals_out_of_the_counts(ingested: Path, tmp_path: Path):
    """A clip file that changed is registered again under a new id; the signals computed
    on the old version leave the views (their clip is gone), and their counts with them."""
    from reference import stored_transfer_counts, tally_transfer_counts

    path = shutil.copyfile(ingested, tmp_path / "warehouse.duckdb")
    with store.opened(path) as con:
        root = Path(clips.dataset_info(con, DATASET).root)
        copy = shutil.copytree(root, tmp_path / "clips")
        clips.relocate(con, DATASET, copy)
        clip_id, rel = con.execute(
            "SELECT clip_id, path FROM clips WHERE clip_id IN (SELECT clip_id FROM signal_probs)"
            " ORDER BY clip_id LIMIT 1"
        ).fetchone()
        before = stored_transfer_counts(con)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    import soundfile as sf

    sf.write(copy / rel, wave, 16000)
    with store.opened(path) as con:
        clips.add_dataset(con, DATASET, progress=False)
        assert con.execute(
            "SELECT count(*) FROM clips WHERE clip_id = ?", [clip_id]
        ).fetchone() == (0,)
        tally, stored = tally_transfer_counts(con), stored_transfer_counts(con)
    assert stored == tally and sum(stored.values()) < sum(before.values())
