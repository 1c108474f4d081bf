"""What `sigwh ingest --ray` adds per batch over the actors' own work, on a local cluster.

    python bench/bench_ray.py [--clips 16] [--actors 1] [--clips-per-batch 1] [--model sp1]

Builds a warehouse of the shipped spoof clips with one zoo model (the task's only one,
so a batch is mostly that model's search), and runs the same ingest job twice from the
same starting file: locally (`run_ingest`, one process) and on a local Ray cluster
started here (`ray.init(num_cpus=2, num_gpus=4)`, logical GPUs; the actors run on the
CPU), with the light parameters of the tests. Checks that both store the same rows,
then prints per batch:

  - local: the local job's wall time per batch (torch on one thread, as each actor is);
  - actor: the seconds an actor spent on a batch (decoding its audio, the search,
    evaluating the signals, Arrow);
  - driver: the driver's own seconds per batch (reading the batch's inputs from the
    warehouse; taking a result in and handing it to the writer thread);
  - overhead: (wall time of the Ray loop - actor seconds / actors) / batches: the time
    per batch the actors were not computing, i.e. what Ray and the driver add;
  - actor gap: the mean time between one batch's return and the next one's start on an
    actor (its result stored, the next task fetched and unpacked): Ray's own share;
  - ray vs local: the Ray run's seconds per batch minus the local run's (each from its
    `runs` row: from the run's start, after the models loaded, to its end).

Actor start-up (a Python process, torch and the models, once per actor) is printed
apart: it is paid once per job, not per batch.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from light_params import PARAMS  # noqa: E402

from sigwarehouse import catalog, clips, store  # noqa: E402
from sigwarehouse.jobs import ingest  # noqa: E402
from sigwarehouse.jobs.ingest import on_ray  # noqa: E402


def build(path: Path, model: str) -> Path:
    store.init(path)
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, "spoof-eval", store_audio=True, progress=False)
        con.execute("DELETE FROM models WHERE task = 'spoof' AND model <> ?", [model])
    return path


def facts(path: Path) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            con.execute(f"SELECT * EXCLUDE (run_id{extra}) FROM {t} ORDER BY ALL").fetchall()
            for t, extra in (
                ("explanations", ", seconds"),
                ("original_probs", ""),
                ("signal_probs", ""),
                ("sufficient_ranks", ""),
            )
        ]
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--clips-per-batch", type=int, default=1)
    ap.add_argument("--model", default="sp1")
    ap.add_argument(
        "--local-threads",
        type=int,
        default=1,
        help="torch threads of the local run (default 1: what Ray gives each actor)",
    )
    args = ap.parse_args()
    import ray
    import torch

    torch.set_num_threads(args.local_threads)

    folder = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        start = build(folder / "start.duckdb", args.model)
        local, remote = (Path(shutil.copy(start, folder / n)) for n in ("l.duckdb", "r.duckdb"))

        def plan_of(path: Path) -> ingest.IngestPlan:
            with store.opened(path, read_only=True) as con:
                plan = ingest.plan_ingest(con, args.model, PARAMS, limit=args.clips)
            return plan

        done = ingest.run_ingest(local, plan_of(local), clips_per_batch=args.clips_per_batch)
        local_s = done.counters.total_seconds  # from the run's start: models loaded before

        ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
        begin = time.perf_counter()
        summary = on_ray.run_ingest_ray(
            remote, plan_of(remote), actors=args.actors, clips_per_batch=args.clips_per_batch
        )
        ray_total = time.perf_counter() - begin
        ray.shutdown()
        t = summary.counters.extra["ray"]
        n = t["batches"]
        same = facts(local) == facts(remote)
        overhead = (t["wall_s"] - t["actor_s"] / args.actors) / n
        print(
            f"{n} batches of {args.clips_per_batch} clip(s), {args.actors} actor(s), "
            f"model {args.model}; same rows as the local run: {same}"
        )
        print(f"  local        {local_s / n * 1e3:8.1f} ms/batch")
        print(f"  actor        {t['actor_s'] / n * 1e3:8.1f} ms/batch")
        print(f"  driver       {t['driver_s'] / n * 1e3:8.1f} ms/batch")
        print(f"  overhead     {overhead * 1e3:8.1f} ms/batch (wall - actor seconds / actors)")
        gap = t.get("gap_s", 0.0) / max(t.get("gaps", 0), 1)
        print(f"  actor gap    {gap * 1e3:8.1f} ms/batch (between an actor's batches)")
        ray_run_s = summary.counters.total_seconds
        print(f"  ray vs local {(ray_run_s - local_s) / n * 1e3:+8.1f} ms/batch (run seconds)")
        print(f"  start-up     {ray_total - ray_run_s:8.1f} s once (actors, models)")
        if not same:
            raise SystemExit("the Ray run stored other rows than the local run")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
