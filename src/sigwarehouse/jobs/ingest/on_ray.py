"""`sigwh ingest --ray`: one ingest job's batches computed by a pool of Ray actors.

The warehouse stays one embedded DuckDB file with one writer: this process (the
driver) plans the missing work from it as a local job does, reads each batch's inputs
(clip ids with where their audio is: FLAC bytes from the warehouse or a file path the
workers can read), and is the only process that writes. Ray supplies the rest: the
actors (one per GPU, `num_gpus=1`; CPU actors where the cluster has no GPU) load the
task's models once and turn each batch into Arrow tables with the same computation as
a local job (batch.py); the driver stores each result in one transaction
through the job's writer, so every row keeps its natural key.

Failures: an actor that dies (its node lost, `ray.kill`, out of memory) is replaced
and its batches are submitted again; a driver that dies leaves its stored batches, and
the same command run again plans only the missing work (the run is marked
`abandoned`, as a killed local job's is). Ray is imported only here, so `sigwh --help`
and local jobs never pay for it.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sigwarehouse import devices, probes, store
from sigwarehouse.audio import ClipSource, clip_sources
from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs.ingest import batch
from sigwarehouse.jobs.ingest.plan import IngestPlan, IngestSummary
from sigwarehouse.jobs.ingest.rows import (
    floor_table,
    measured,
    probe_table,
    started_run,
    stored_masks_on,
    write_rows,
)
from sigwarehouse.jobs.ingest.runtime import longest_clip, runtime_choices
from sigwarehouse.jobs.skeleton import chunks
from sigwarehouse.jobs.writer import HoldPolicy
from sigwarehouse.models import trust
from sigwarehouse.models.counting import timed
from sigwarehouse.models.loader import load_models
from sigwarehouse.models.precision import float32_only
from sigwarehouse.records import task_models
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    from sigwarehouse.records import ModelRecord

INSTALL_HINT = "pip install 'sigwarehouse[ray]'"
IN_FLIGHT_PER_ACTOR = 2  # a queued batch per actor, so no actor waits on the driver
REPLACEMENTS_PER_ACTOR = 3  # dead actors replaced before the job gives up
READ_AHEAD = 8  # batches whose inputs the driver reads per open of the warehouse


def import_ray() -> Any:
    """The ray module, or a SigwhError that says how to install it."""
    try:
        import ray  # only here: `sigwh --help` and local jobs never import it
    except ImportError as exc:
        raise SigwhError(
            f"--ray needs Ray, which is not installed here: {INSTALL_HINT} (on every node "
            "of the cluster, with the same Python and sigwarehouse versions)"
        ) from exc
    return ray


class IngestWorker:
    """What each Ray actor runs: the task's models, loaded once, and the batch
    computations of jobs.batch. A plain class: `ray.remote` makes it an actor
    (see actor_options), and a test may call it in-process."""

    def __init__(self, records: list[ModelRecord], labels: list[str], device: str | None):
        self.device = devices.default_device(device)
        self.counters = write_path.RunCounters()  # queries and forward seconds, as timed counts
        # The driver has resolved the records under its trust policy and catalog
        # (models.trust.resolve); the worker loads them as they are.
        loaded = load_models(records, labels, self.device, trust.ModelSource(trust_warehouse=True))
        self.models = {name: timed(clf, self.counters) for name, clf in loaded.items()}
        self.returned: float | None = None  # when the last batch's method returned

    def where(self) -> str:
        threads = torch.get_num_threads()  # Ray sets OMP_NUM_THREADS to the actor's CPUs
        return f"{socket.gethostname()}:{os.getpid()} ({self.device}, {threads} thread(s))"

    def prepare(
        self, plan: IngestPlan, auto_batch: bool, longest: int | None
    ) -> tuple[IngestPlan, dict]:
        """Resolve the explained model's precision and batch size here (the first actor
        does, for the run's record) or apply the driver's resolved ones (the others)."""
        return runtime_choices(plan, self.models, self.device, auto_batch, longest)

    def explain(
        self, plan: IngestPlan, run_id: str, clip_ids: list[int], sources: list[ClipSource]
    ) -> dict:
        before = self._spent()
        started = time.perf_counter()
        rows = batch.explain_sources(plan, sources, self.models, run_id, self.device)
        return self._payload(rows, before, started)

    def cross_fill(
        self,
        plan: IngestPlan,
        run_id: str,
        stored: list[batch.StoredMasks],
        sources: list[ClipSource],
    ) -> dict:
        before = self._spent()
        started = time.perf_counter()
        target = self.models[plan.model]
        rows = batch.cross_fill_sources(plan, stored, sources, target, run_id, self.device)
        return self._payload(rows, before, started)

    def probes(self, plan: IngestPlan, run_id: str) -> tuple[list[tuple], tuple[int, float]]:
        before = self._spent()
        with float32_only():
            rows = probes.probe_rows(
                self.models[plan.model], plan.model, plan.probe_samples, run_id
            )
        return rows, self._since(before)

    def noise_floor(
        self, plan: IngestPlan, run_id: str, sources: list[ClipSource]
    ) -> tuple[list[tuple], tuple[int, float]]:
        before = self._spent()
        rows = batch.floor_sources(plan, sources, self.models[plan.model], run_id, self.device)
        return rows, self._since(before)

    def _spent(self) -> tuple[int, float]:
        return self.counters.queries, self.counters.model_seconds

    def _since(self, before: tuple[int, float]) -> tuple[int, float]:
        queries, seconds = self._spent()
        return queries - before[0], seconds - before[1]

    def _payload(self, rows: batch.BatchRows, before: tuple[int, float], started: float) -> dict:
        payload = rows.to_arrow()
        now = time.perf_counter()
        # The seconds this batch took here (Arrow included), and the gap since the last
        # batch returned: Ray's cost per batch on this side (the result stored, the next
        # task fetched, its inputs unpacked) plus any wait for work. The driver sums
        # both into counters.extra["ray"], where the overhead per batch is read from.
        gap = None if self.returned is None else started - self.returned
        self.returned = now
        return {**payload, "spent": self._since(before), "seconds": now - started, "gap": gap}


@dataclass
class _Work:
    """One unit submitted to an actor: a batch of clips to explain, or of stored
    explanations to cross-fill, with the inputs read from the warehouse."""

    kind: str  # explain | cross_fill
    items: list  # clip ids, or (source model, clip id) pairs
    args: tuple  # what the actor method takes after (plan, run_id)
    tries: int = 0


def actor_options(use_gpus: bool) -> dict:
    """One actor per GPU; on a cluster without GPUs, one CPU (and one torch thread) each."""
    if use_gpus:
        return {"num_gpus": 1}
    return {"num_cpus": 1}


def run_ingest_ray(
    path: Path,
    plan: IngestPlan,
    *,
    address: str | None = None,
    device: str | None = None,
    actors: int | None = None,
    clips_per_batch: int | None = None,
    progress: Callable[[int, write_path.RunCounters], None] | None = None,
    hold: HoldPolicy = HoldPolicy(),
    auto_batch: bool = False,
    on_result: Callable[[int, list], None] | None = None,
) -> IngestSummary:
    """Carry out an ingest plan on a Ray cluster; returns the summary, as run_ingest.

    `address`: as ray.init takes it ("auto": the cluster this node belongs to;
    "ray://host:10001"; None: RAY_ADDRESS, else a cluster started for this job). A Ray
    already initialised in this process is used as it is. `actors`: how many (default:
    one per GPU of the cluster, else one per CPU). `device`: what actors run on (default:
    cuda where torch sees a GPU, else cpu). `on_result(n, actors)` is called after the
    n-th result is stored, with the actor handles (tests kill one part way).
    """
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    use_gpus = gpus >= 1
    count = actors or (gpus if use_gpus else max(cpus, 1))
    options = actor_options(use_gpus)
    per_batch = clips_per_batch or devices.clips_per_batch("cuda" if use_gpus else "cpu")

    with store.opened(path, read_only=True) as con:
        records = trust.resolve(task_models(con, plan.task))  # the driver's catalog decides
        longest = longest_clip(con, plan.clip_ids)
    worker = ray.remote(IngestWorker)

    def start_actor() -> Any:
        return worker.options(**options).remote(records, plan.task_labels, device)

    pool = [start_actor() for _ in range(count)]
    # Every actor loads the models before any work: a model that cannot load fails the
    # job here, before a run row exists, as in a local job.
    try:
        plan, runtime = ray.get(pool[0].prepare.remote(plan, auto_batch, longest))
        ray.get([a.prepare.remote(plan, False, longest) for a in pool[1:]])
        places = ray.get([a.where.remote() for a in pool])
    except ray.exceptions.RayActorError as exc:
        raise SigwhError(
            f"the Ray actors could not start with the models of task {plan.task}: each node "
            "needs sigwarehouse and the model files at the paths the warehouse names "
            f"(zoo checkpoints, hf folders). Ray said: {exc}"
        ) from exc
    runtime["ray"] = {"actors": count, "per_actor": options, "places": places}
    counters = write_path.RunCounters()
    on = "gpu" if use_gpus else "cpu"
    with started_run(path, plan, counters, runtime, f"ray:{count}x{on}", hold) as (
        run,
        write,
    ):
        if plan.probe_samples is not None:
            rows, spent = ray.get(pool[0].probes.remote(plan, run.run_id))
            _add_spent(counters, spent)
            run.write([probe_table(rows)])
        if plan.floor_clips:  # before any batch: every clip is searched from the floor
            with store.opened(path) as con:  # as the writer thread opens it: one instance
                sources = clip_sources(con, plan.floor_clips)
            rows, spent = ray.get(pool[0].noise_floor.remote(plan, run.run_id, sources))
            _add_spent(counters, spent)
            run.write([floor_table(rows)])
            plan = measured(plan, rows)
        work = deque(
            [_Work("explain", list(b), ()) for b in chunks(plan.clip_ids, per_batch)]
            + [_Work("cross_fill", list(p), ()) for p in chunks(plan.cross_fill, per_batch * 4)]
        )
        _drive(ray, path, plan, run, write, pool, start_actor, work, progress, on_result)
    return run.summary


def _drive(
    ray: Any,
    path: Path,
    plan: IngestPlan,
    run: Any,
    write: Any,
    pool: list,
    start_actor: Callable[[], Any],
    work: deque[_Work],
    progress: Callable[[int, write_path.RunCounters], None] | None,
    on_result: Callable[[int, list], None] | None,
) -> None:
    """Keep every actor busy until all work is stored; replace dead actors and submit
    their batches again."""
    counters = run.counters
    in_flight: dict[Any, tuple[int, Any, _Work]] = {}  # ref -> (slot, actor, work)
    load = [0] * len(pool)
    replaced, results = 0, 0
    # What the overhead per batch is measured from: the actors' seconds per batch, the
    # driver's own (reading inputs, taking results in and handing them to the writer),
    # and the wall time of the whole loop.
    timing = counters.extra.setdefault(
        "ray", {"batches": 0, "actor_s": 0.0, "driver_s": 0.0, "wall_s": 0.0}
    )
    started = time.perf_counter()
    # What actors need of the plan: not its lists of clips, which at study scale would
    # be pickled again with every batch.
    slim = replace(plan, clip_ids=[], cross_fill=[])

    def submit(slot: int, item: _Work) -> None:
        if not item.args:  # read the inputs once; a resubmission reuses them
            begin = time.perf_counter()
            ahead = [w for w, _ in zip(work, range(READ_AHEAD - 1), strict=False) if not w.args]
            _read_inputs(path, plan, [item, *ahead])
            timing["driver_s"] += time.perf_counter() - begin
        method = getattr(pool[slot], item.kind)
        ref = method.remote(slim, run.run_id, *item.args)
        in_flight[ref] = (slot, pool[slot], item)
        load[slot] += 1

    while work or in_flight:
        for slot in sorted(range(len(pool)), key=load.__getitem__):
            while work and load[slot] < IN_FLIGHT_PER_ACTOR:
                submit(slot, work.popleft())
        [ref], _ = ray.wait(list(in_flight), num_returns=1)
        slot, actor, item = in_flight.pop(ref)
        load[slot] -= 1
        try:
            payload = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            item.tries += 1
            if item.tries > REPLACEMENTS_PER_ACTOR:
                raise SigwhError(
                    f"a batch of {len(item.items)} {item.kind} item(s) killed "
                    f"{item.tries} actors in a row; last: {exc}"
                ) from exc
            if pool[slot] is actor:  # the first of its batches to come back: replace it
                replaced += 1
                pool[slot] = start_actor()
                # Not waited for: an actor runs its calls in order, so the batches sent
                # next run after it, and the other actors' results keep being stored
                # while this one loads its models.
                pool[slot].prepare.remote(plan, False, None)
                counters.extra["actors_replaced"] = replaced
            work.appendleft(item)
            continue
        begin = time.perf_counter()
        rows = batch.BatchRows.from_arrow(payload)
        _add_spent(counters, payload["spent"])
        rows.count_into(counters)
        write_rows(write, rows)
        run.clock()
        results += 1
        timing["driver_s"] += time.perf_counter() - begin
        timing["actor_s"] += payload["seconds"]
        timing["batches"] += 1
        if payload["gap"] is not None:
            timing["gaps"] = timing.get("gaps", 0) + 1
            timing["gap_s"] = timing.get("gap_s", 0.0) + payload["gap"]
        timing["wall_s"] = time.perf_counter() - started
        if progress and item.kind == "explain":
            progress(len(item.items), counters)
        if on_result:
            on_result(results, pool)


def _read_inputs(path: Path, plan: IngestPlan, items: list[_Work]) -> None:
    """Read what the actors need for these units of work, in one open of the warehouse:
    the clips' sources (FLAC bytes, or a path each worker reads) and, for cross-filling,
    the stored masks. (Opening the file costs about as much as reading a batch.)"""
    with store.opened(path) as con:  # as the writer thread opens it: one instance
        for item in items:
            if item.kind == "explain":
                item.args = (item.items, clip_sources(con, item.items))
            else:
                stored = stored_masks_on(con, item.items, plan.params.hash())
                clip_ids = sorted({row[1] for row in stored})
                item.args = (stored, clip_sources(con, clip_ids))


def _add_spent(counters: write_path.RunCounters, spent: tuple[int, float]) -> None:
    queries, seconds = spent
    counters.queries += queries
    counters.model_seconds += seconds
