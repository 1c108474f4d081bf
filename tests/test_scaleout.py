"""Beyond one process: `sigwh ingest --ray` on a real local Ray cluster, and shard files
with `sigwh merge`, each checked row for row against a local run with the same seed.

The cluster is Ray's own, started in this process with logical GPUs
(`ray.init(num_cpus=2, num_gpus=4)`): the actors ask for `num_gpus=1` each as on a GPU
machine, and run on the CPU since torch sees no GPU here. The work is one model of the
spoof task (sp1, the 1-D CNN, with sp2 already ingested before sp1 was in the catalog), so
each run explains clips, evaluates their signals on both models, cross-fills sp2's
stored explanations on sp1 and stores sp1's probes: every table ingest writes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from light_params import ARGS as LIGHT_ARGS
from light_params import PARAMS
from polling import LET_GO_EACH_BATCH, signal_after_first_batch
from sharing import sigwh

from sigwarehouse import catalog, clips, store
from sigwarehouse.jobs import ingest
from sigwarehouse.jobs.ingest import shards

ray = pytest.importorskip("ray")
from sigwarehouse.jobs.ingest import on_ray  # noqa: E402  (after the skip: it is the Ray path)

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("scaleout")

REPO = Path(__file__).resolve().parents[1]
DATASET = "spoof-eval"
# LATER, explained in every run, is the fastest model (the 1-D CNN); FIRST, a
# transformer, is explained once, by the `base` fixture
FIRST, LATER = "sp2", "sp1"
PER_LABEL = 2  # 4 clips: several one-clip batches for the actors to share
FIRST_PER_LABEL = 1  # 2 clips of FIRST's to cross-fill: the transformer explains few
# Every column of every table ingest writes, but the run ids and times: they differ
# between runs by design.
NOT_FACTS = {"run_id", "seconds", "happened_at"}
TABLES = (
    "explanations", "sufficient_ranks", "original_probs", "signal_probs", "model_probes",
    "freqrex_params", "job_errors", "transfer_counts",
)  # fmt: skip
RUN_FACTS = "job, model, task, dataset, params_hash, seed, status, clips_done, queries, n_errors"


def _facts(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ?"
                    " ORDER BY column_index",
                    [table],
                ).fetchall()
                if c not in NOT_FACTS
            ]
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ALL").fetchall()
            out[table] = rows
        return out
    finally:
        con.close()


def _runs(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT {RUN_FACTS} FROM runs ORDER BY ALL").fetchall()
    finally:
        con.close()


def _plan(path: Path, **kwargs) -> ingest.IngestPlan:
    with store.opened(path, read_only=True) as con:
        return ingest.plan_ingest(
            con, LATER, PARAMS, dataset=DATASET, per_label=PER_LABEL, **kwargs
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FIRST ingested while it was the task's only model, then LATER added: what is
    left for LATER is explaining its clips and cross-filling FIRST's explanations."""
    path, _ = store.init(tmp_path_factory.mktemp("base") / "warehouse.duckdb")
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, DATASET, store_audio=True, progress=False)
        con.execute(
            "DELETE FROM models WHERE task = 'spoof' AND model NOT IN (?, ?)", [FIRST, LATER]
        )
        later = con.execute("SELECT * FROM models WHERE model = ?", [LATER]).fetchall()
        con.execute("DELETE FROM models WHERE model = ?", [LATER])
    with store.opened(path, read_only=True) as con:
        plan = ingest.plan_ingest(con, FIRST, PARAMS, dataset=DATASET, per_label=FIRST_PER_LABEL)
    assert ingest.run_ingest(path, plan, clips_per_batch=2).status == "done"
    with store.opened(path) as con:
        con.execute(f"INSERT INTO models VALUES ({', '.join('?' * len(later[0]))})", later[0])
    plan = _plan(path)
    assert len(plan.clip_ids) == 2 * PER_LABEL and len(plan.cross_fill) == 2 * FIRST_PER_LABEL
    assert plan.probe_samples is not None
    return path


@pytest.fixture(scope="module")
def local(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: LATER's job run locally, in one process, on one torch thread as
    each actor runs (Ray gives an actor of one CPU one thread). A transformer's outputs
    (FIRST's, on LATER's signals) differ in their last bits between thread counts (its
    matrix products sum in another order), so equal rows need equal thread counts."""
    from threads import torch_threads

    path = shutil.copy(base, tmp_path_factory.mktemp("local") / "warehouse.duckdb")
    with torch_threads(1):
        assert ingest.run_ingest(path, _plan(path), clips_per_batch=1).status == "done"
    return Path(path)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with four logical GPUs on this machine's two cores."""
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _copy(base: Path, tmp_path: Path, name: str = "warehouse.duckdb") -> Path:
    return Path(shutil.copy(base, tmp_path / name))


@pytest.mark.slow
def test_a_ray_run_whose_actors_are_killed_mid_run_stores_exactly_the_rows_of_a_local_run(
    base: Path, local: Path, cluster: str, tmp_path: Path
) -> None:
    """Every actor is killed once, after the first batch is stored: they are replaced,
    their batches redone, and the rows are a local run's (one Ray run serves both: a run
    without kills is the same path with nothing to redo)."""
    path = _copy(base, tmp_path)
    killed = []

    def kill_every_actor_once(results: int, actors: list) -> None:
        if results == 1:  # one batch stored; the others are queued or running
            for actor in actors:
                ray.kill(actor)
            killed.extend(actors)

    summary = on_ray.run_ingest_ray(
        path, _plan(path), actors=2, clips_per_batch=1, on_result=kill_every_actor_once
    )
    assert len(killed) == 2 and summary.status == "done"
    assert summary.counters.extra["actors_replaced"] == 2
    assert summary.counters.extra["cross_filled"] == 2 * FIRST_PER_LABEL
    assert _facts(path) == _facts(local)
    assert _runs(path) == _runs(local)  # counters included: every query is counted once
    with store.opened(path, read_only=True) as con:
        device, params = con.execute(
            "SELECT device, params->'runtime'->'ray'->>'actors' FROM runs WHERE model = ?",
            [LATER],
        ).fetchone()
    assert (device, params) == ("ray:2xgpu", "2")  # logical GPUs: one actor each


@pytest.mark.slow
def test_a_sigkilled_driver_then_a_rerun_store_exactly_the_rows_of_a_local_run(
    base: Path, local: Path, cluster: str, tmp_path: Path
) -> None:
    path = _copy(base, tmp_path)
    args = ["ingest", "--model", LATER, "--per-label", str(PER_LABEL), "--clips-per-batch", "1"]
    args += [*LIGHT_ARGS, "--ray", cluster, "--actors", "1"]  # one actor: batches in turn
    args += LET_GO_EACH_BATCH
    driver = subprocess.Popen(
        [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    count = "SELECT count(*) FROM explanations WHERE model = ?"
    done = signal_after_first_batch(driver, path, count, [LATER])
    stderr = driver.communicate()[1].decode()
    assert 1 <= done < 2 * PER_LABEL, f"the driver should die part way ({done}): {stderr[-2000:]}"
    rerun = sigwh(path, *args)  # in this process, on the same cluster
    assert rerun.exit_code == 0, rerun.output
    assert _facts(path) == _facts(local)
    statuses = [r[6] for r in _runs(path) if r[1] == LATER]
    assert sorted(statuses) == ["abandoned", "done"]


@pytest.mark.slow
def test_shards_merged_store_exactly_the_rows_of_a_local_run_however_often_merged(
    base: Path, local: Path, tmp_path: Path
) -> None:
    main = _copy(base, tmp_path)
    before = _facts(main)
    # One clip a batch, as the reference: rows are equal bit for bit between runs that
    # batch the same clips together (see test_rows_depend_on_batching_only_in_the_last_bits)
    args = ["ingest", "--model", LATER, "--per-label", str(PER_LABEL), "--clips-per-batch", "1"]
    args += ["--threads", "1"]  # as the reference (see `local`)
    args += LIGHT_ARGS
    shard = [tmp_path / f"shard_{i}.duckdb" for i in range(2)]
    # shard 0 first stops after one clip (a partial shard, merged as it is), then is
    # rerun to completion into the same file
    result = sigwh(main, *args, "--shard", "0/2", "--into", str(shard[0]), "--limit", "1")
    assert result.exit_code == 0, result.output
    partial = Path(shutil.copy(shard[0], tmp_path / "partial_0.duckdb"))
    for i in range(2):
        result = sigwh(main, *args, "--shard", f"{i}/2", "--into", str(shard[i]))
        assert result.exit_code == 0, result.output
    assert _facts(main) == before, "a shard job only reads the warehouse"

    assert sigwh(main, "merge", str(partial)).exit_code == 0
    result = sigwh(main, "merge", str(shard[0]), str(shard[1]), str(shard[0]))
    assert result.exit_code == 0, result.output
    assert "nothing new" in result.output.splitlines()[-1]  # the second merge of shard 0
    assert _facts(main) == _facts(local)
    statuses = [r[6] for r in _runs(main) if r[1] == LATER]
    assert statuses == ["done"] * 3  # shard 0's two runs and shard 1's

    # A copy of a shard taken while its job ran, merged after the finished shard: the
    # finished status stays. (The copy is the finished file with its runs set back to
    # `running`, as the file reads while its job runs.)
    stale = Path(shutil.copy(shard[1], tmp_path / "stale_1.duckdb"))
    with store.opened(stale) as con:
        con.execute("UPDATE runs SET status = 'running', ended_at = NULL")
    assert sigwh(main, "merge", str(stale)).exit_code == 0
    assert _facts(main) == _facts(local)
    assert [r[6] for r in _runs(main) if r[1] == LATER] == ["done"] * 3


def test_merge_refuses_a_shard_of_another_warehouse(
    base: Path, tmp_path: Path, wh_path: Path
) -> None:
    with store.opened(base, read_only=True) as con:
        row = con.execute("SELECT * FROM original_probs ORDER BY ALL LIMIT 1").fetchall()[0]
    # a shard of base as an ingest job starts it (its clip recorded), with one row
    shard = shards.open_shard(tmp_path / "shard.duckdb", base, [row[1]])
    with store.opened(shard) as into:
        into.execute("INSERT INTO original_probs VALUES (?, ?, ?, ?, ?, ?)", row)
    other = _copy(base, tmp_path, "other.duckdb")  # the same clip ids, other files
    with store.opened(other) as con:
        con.execute("UPDATE clips SET sha256 = 'another file'")
    result = sigwh(other, "merge", str(shard))
    assert result.exit_code == 1
    assert "was made from another warehouse" in result.output
    assert sigwh(base, "merge", str(shard)).exit_code == 0  # its own warehouse takes it
    not_a_shard = _copy(base, tmp_path, "not_a_shard.duckdb")
    result = sigwh(wh_path, "merge", str(not_a_shard))  # a warehouse has clips, but not here
    assert result.exit_code == 1
    assert "was made from another warehouse" in result.output
    result = sigwh(wh_path, "ingest", "--model", FIRST, "--into", str(wh_path))
    assert result.exit_code == 1 and "is the warehouse itself" in result.output


def test_ray_is_imported_only_by_the_ray_path() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from sigwarehouse.cli import app; "
        "r = CliRunner().invoke(app, ['ingest', '--help']); assert r.exit_code == 0; "
        "print('ray' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_without_ray_the_error_says_how_to_install_it(
    wh_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without Ray
    result = sigwh(wh_path, "ingest", "--model", FIRST, "--ray", "local")
    assert result.exit_code == 1
    assert "pip install 'sigwarehouse[ray]'" in result.output
