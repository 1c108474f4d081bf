"""The local ingest driver: a plan carried out in this process, on its device, writing
the warehouse (or, with `into`, a shard file: shards.py).

For each batch of clips, the audio is read with the warehouse closed, the explanation
and every model's view of the signals computed (batch.py), and the rows handed to the
writer, which stores each batch in one transaction (see `sigwarehouse.jobs` for why): a
job killed at any moment loses at most its in-flight batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse import devices, probes, store
from sigwarehouse.jobs import writer
from sigwarehouse.jobs.ingest import batch
from sigwarehouse.jobs.ingest.plan import IngestPlan, IngestSummary
from sigwarehouse.jobs.ingest.rows import (
    floor_table,
    measured,
    probe_table,
    read_clip_sources,
    started_run,
    stored_masks,
    write_rows,
)
from sigwarehouse.jobs.ingest.runtime import longest_clip, runtime_choices
from sigwarehouse.jobs.skeleton import JobRun, chunks, timed_models
from sigwarehouse.jobs.writer import HoldPolicy
from sigwarehouse.models.loader import load_models
from sigwarehouse.models.precision import float32_only
from sigwarehouse.records import task_models
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    from sigwarehouse.models.base import AudioClassifier


def _explain_batch(
    run: JobRun,
    plan: IngestPlan,
    clip_ids: list[int],
    models: dict[str, AudioClassifier],
    device: str,
    write: writer.BatchWriter,
    source: Path | None = None,
) -> None:
    """Explain a batch of clips with plan.model, evaluate their signals everywhere, store.
    Audio is read from `source` (a shard job's main warehouse), else from the run's file."""
    sources = read_clip_sources(source or run.path, clip_ids, read_only=source is not None)
    rows = batch.explain_sources(plan, sources, models, run.run_id, device)
    rows.count_into(run.counters)
    write_rows(write, rows)


def _cross_fill_batch(
    run: JobRun,
    plan: IngestPlan,
    pairs: list[tuple[str, int]],
    target: AudioClassifier,
    device: str,
    write: writer.BatchWriter,
    source: Path | None = None,
) -> None:
    """Evaluate other models' stored signals on plan.model and store the rows."""
    read, read_only = source or run.path, source is not None
    stored = stored_masks(read, pairs, plan.params.hash(), read_only=read_only)
    clip_ids = sorted({row[1] for row in stored})
    sources = read_clip_sources(read, clip_ids, read_only=read_only)
    rows = batch.cross_fill_sources(plan, stored, sources, target, run.run_id, device)
    rows.count_into(run.counters)
    write_rows(write, rows)


def check_models(path: Path, plan: IngestPlan) -> list[str]:
    """Load every model the plan's job would load (each of the task's, on the CPU), as a
    dry run's check: raises the SigwhError the job would raise, naming the model that
    cannot load. Returns their names."""
    with store.opened(path, read_only=True) as con:
        records = task_models(con, plan.task)
    return sorted(load_models(records, plan.task_labels, "cpu"))


def run_ingest(
    path: Path,
    plan: IngestPlan,
    *,
    device: str = "cpu",
    clips_per_batch: int | None = None,
    progress: Callable[[int, write_path.RunCounters], None] | None = None,
    hold: HoldPolicy = HoldPolicy(),
    auto_batch: bool = False,
    into: Path | None = None,
) -> IngestSummary:
    """Carry out a plan; returns the summary. Ctrl-C ends the run as `interrupted`.

    Stored batches stay stored whatever happens; a model that cannot load fails the job
    before any work. `clips_per_batch` defaults to the device's (devices.clips_per_batch).
    `progress(clips_just_done, counters)` is called after each batch. `hold` says how
    long the writer keeps the file open across batches (jobs.writer.HoldPolicy).

    The explained model's search runs in plan.params.dtype (None: the device's default,
    models/precision.py); `auto_batch` sizes its batches from the device's free memory
    (models/batching.py). Both are resolved here and stored with the run's parameters,
    with each model's precision and attention kernel (outside the parameter hash).

    `into`: a shard file (shards.py) to write instead of `path`, which is then only
    read (catalog, clips, other models' explanations), so many shard jobs can run at
    once on one main warehouse; `sigwh merge` folds the shards in afterwards.
    """
    per_batch = clips_per_batch or devices.clips_per_batch(device)
    with store.opened(path, read_only=True) as con:
        records = task_models(con, plan.task)
        longest = longest_clip(con, plan.clip_ids)
    counters = write_path.RunCounters()
    models = timed_models(records, plan.task_labels, device, counters)
    plan, runtime = runtime_choices(plan, models, device, auto_batch, longest)
    source = path if into is not None else None  # where a shard job reads its clips
    with started_run(into or path, plan, counters, runtime, device, hold) as (run, write):
        if plan.probe_samples is not None:  # before any batch: no write is in flight yet
            model = models[plan.model]
            with float32_only():
                rows = probes.probe_rows(model, plan.model, plan.probe_samples, run.run_id)
            run.write([probe_table(rows)])
        if plan.floor_clips:  # the margin every clip of the job is searched from
            sources = read_clip_sources(source or run.path, plan.floor_clips,
                                        read_only=source is not None)  # fmt: skip
            rows = batch.floor_sources(plan, sources, models[plan.model], run.run_id, device)
            run.write([floor_table(rows)])
            plan = measured(plan, rows)
        for clip_ids in chunks(plan.clip_ids, per_batch):
            _explain_batch(run, plan, clip_ids, models, device, write, source)
            run.clock()
            if progress:
                progress(len(clip_ids), counters)
        for pairs in chunks(plan.cross_fill, per_batch * 4):
            _cross_fill_batch(run, plan, pairs, models[plan.model], device, write, source)
            run.clock()
    return run.summary
