"""`sigwh ingest --model M`: explain every clip of M's task with freqrex and store it all.

For each clip not yet done with the same parameters, one ingest job stores M's original
probabilities, the freqrex explanation (responsibility map, sufficient and complete
masks), and the probabilities that *every* model of the task gives the sufficient,
complete and inverse signals. It also gives M's probabilities on every other model's
stored signals that M has not seen, so the order in which models are ingested does not
matter: the cross-model matrix fills itself.

A batch of clips is computed with the warehouse closed and written in one transaction
(see `sigwarehouse.jobs` for why), so a job killed at any moment loses at most its
in-flight batch, and rerunning it does exactly the work that is missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse import devices, probes, store
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.jobs import ingest_batch, writer
from sigwarehouse.jobs.skeleton import JobRun, chunks, job_run, timed_models
from sigwarehouse.jobs.writer import HoldPolicy
from sigwarehouse.records import model_record, task_datasets, task_labels, task_models
from sigwarehouse.signals import SIGNAL_KINDS
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb

    from sigwarehouse.audio import ClipSource
    from sigwarehouse.models.base import AudioClassifier


@dataclass
class IngestPlan:
    """What a job will do: which clips to explain and which stored signals to fill in."""

    model: str
    task: str
    task_labels: list[str]
    datasets: list[str]
    params: FreqrexParams
    targets: list[str]  # every model of the task (M included)
    clip_ids: list[int]  # clips M explains in this job
    cross_fill: list[tuple[str, int]]  # (source model, clip) whose stored signals M has not seen
    est_queries_per_clip: int = 0
    probe_samples: int | None = None  # the length at which M's probes are missing (None: stored)
    shown_params: tuple[str, int] | None = None  # (hash, explanations) the task's views show

    def is_empty(self) -> bool:
        """True when the job would store nothing: no clip, no signal and no probe is missing."""
        return not self.clip_ids and not self.cross_fill and self.probe_samples is None

    def describe(self) -> str:
        at = "none (stored)" if self.probe_samples is None else f"at {self.probe_samples} samples"
        lines = [
            f"model {self.model} (task {self.task}, datasets {', '.join(self.datasets) or '-'})",
            f"  parameters {self.params.hash()}: {json.dumps(self.params.to_dict())}",
            f"  clips to explain: {len(self.clip_ids)}",
            f"  signals evaluated on: {', '.join(self.targets)}",
            f"  other models' stored explanations to evaluate on {self.model}: "
            f"{len(self.cross_fill)}",
            f"  probes of {self.model} ({', '.join(probes.PROBES)}) to store: {at}",
            f"  estimated model queries: ~{self.estimated_queries():,}",
        ]
        ph = self.params.hash()
        if self.shown_params is not None and self.shown_params[0] != ph:
            shown, n = self.shown_params
            lines.append(
                f"  note: the views show task {self.task}'s parameter set {shown} ({n:,} "
                f"explanations); these parameters' results stay apart, reachable with "
                f"alpha_transferability_for('{ph}') and the other _for macros"
            )
        return "\n".join(lines)

    def estimated_queries(self) -> int:
        per_clip = self.est_queries_per_clip + len(SIGNAL_KINDS) * len(self.targets)
        probe_queries = 0 if self.probe_samples is None else len(probes.PROBES)
        return (
            len(self.clip_ids) * per_clip + len(self.cross_fill) * len(SIGNAL_KINDS) + probe_queries
        )


@dataclass
class IngestSummary:
    run_id: str
    plan: IngestPlan
    counters: write_path.RunCounters = field(default_factory=write_path.RunCounters)
    status: str = "running"

    def describe(self) -> str:
        c = self.counters
        model_share = c.model_seconds / c.total_seconds if c.total_seconds else 0.0
        dtype = self.plan.params.dtype or "float32"
        retried = c.extra.get("float32_retries", 0)
        lower = "" if dtype == "float32" else f", {retried} clip(s) searched again in float32"
        return (
            f"run {self.run_id} {self.status}: {c.clips_done} clip(s) explained by "
            f"{self.plan.model} (search in {dtype}, batches of {self.plan.params.batch_size}"
            f"{lower}), {c.extra.get('cross_filled', 0)} stored explanation(s) of other "
            f"models evaluated, {c.queries:,} model queries in {c.total_seconds:.1f} s "
            f"({model_share:.0%} in model forward passes), {c.n_errors} error(s)"
        )


# --- planning ---------------------------------------------------------------------------


def plan_ingest(
    con: duckdb.DuckDBPyConnection,
    model: str,
    params: FreqrexParams,
    *,
    dataset: str | None = None,
    limit: int | None = None,
    per_label: int | None = None,
    shard: tuple[int, int] | None = None,
) -> IngestPlan:
    """Work still to do for `model` with these parameters (nothing stored is redone).

    Clips are taken in clip_id order; `per_label` keeps only the first N clips of each
    label of each dataset (a balanced sample), `limit` caps the clips of this run, and
    `shard=(i, n)` keeps the clips whose id % n == i.
    """
    record = model_record(con, model)
    task = record.task
    labels, _rate = task_labels(con, task)
    datasets = task_datasets(con, task, dataset)
    index, count = shard or (0, 1)
    todo = con.execute(
        """
        WITH eligible AS (
            SELECT clip_id,
                   row_number() OVER (PARTITION BY dataset, label ORDER BY clip_id) AS nth
            FROM clips
            WHERE dataset IN (SELECT unnest(?::VARCHAR[]))
        )
        SELECT clip_id FROM eligible
        WHERE (?::INTEGER IS NULL OR nth <= ?) AND clip_id % ? = ?
          AND clip_id NOT IN (
              SELECT clip_id FROM explanations WHERE model = ? AND params_hash = ?)
        ORDER BY clip_id
        """,
        [datasets, per_label, per_label, count, index, model, params.hash()],
    ).fetchall()
    clip_ids = [c for (c,) in todo][: limit if limit is not None else None]
    cross = con.execute(
        """
        SELECT e.model, e.clip_id FROM explanations e JOIN clips c USING (clip_id)
        WHERE e.model <> ? AND e.params_hash = ? AND c.dataset IN (SELECT unnest(?::VARCHAR[]))
          AND e.model IN (SELECT model FROM models WHERE task = ?)
          AND e.clip_id % ? = ?
          AND NOT EXISTS (
              SELECT 1 FROM signal_probs s
              WHERE s.source_model = e.model AND s.clip_id = e.clip_id
                AND s.params_hash = e.params_hash AND s.target_model = ?)
        ORDER BY e.clip_id, e.model
        """,
        [model, params.hash(), datasets, task, count, index, model],
    ).fetchall()
    past = con.execute(
        "SELECT median(queries) FROM explanations WHERE model = ? AND params_hash = ?",
        [model, params.hash()],
    ).fetchone()[0]
    shown = con.execute(
        "SELECT params_hash, n_explanations FROM parameter_sets WHERE task = ? AND shown", [task]
    ).fetchone()
    return IngestPlan(
        model=model,
        task=task,
        task_labels=labels,
        datasets=datasets,
        params=params,
        targets=[m.model for m in task_models(con, task)],
        clip_ids=clip_ids,
        cross_fill=[(m, c) for m, c in cross],
        est_queries_per_clip=int(past) if past else 600,
        probe_samples=probes.pending_length(con, model, task),
        shown_params=None if shown is None else (shown[0], int(shown[1])),
    )


# --- writing ----------------------------------------------------------------------------

# The columns of each table's rows (defined with the computation that builds them).
EXPLANATION_COLUMNS = ingest_batch.EXPLANATION_COLUMNS
ORIGINAL_COLUMNS = ingest_batch.ORIGINAL_COLUMNS
RANK_COLUMNS = ingest_batch.RANK_COLUMNS
SIGNAL_COLUMNS = ingest_batch.SIGNAL_COLUMNS


def batch_tables(
    explanations: list[tuple],
    originals: list[tuple],
    signal_rows: list[tuple],
    errors: list[dict],
    ranks: list[tuple] | tuple = (),
) -> tuple[list[write_path.Rows], list[dict]]:
    """One ingest batch's rows as the tables and errors the writer stores; `ranks` are the
    further sufficient masks (rank >= 2) of explanations with n_sufficient > 1."""
    tables = [
        write_path.Rows("explanations", EXPLANATION_COLUMNS, explanations),
        write_path.Rows("sufficient_ranks", RANK_COLUMNS, list(ranks)),
        write_path.Rows("original_probs", ORIGINAL_COLUMNS, originals),
        write_path.Rows("signal_probs", SIGNAL_COLUMNS, signal_rows),
    ]
    return tables, errors


def _write_batch(
    path: Path,
    run_id: str,
    counters: write_path.RunCounters,
    explanations: list[tuple],
    originals: list[tuple],
    signal_rows: list[tuple],
    errors: list[dict],
    ranks: list[tuple] | tuple = (),
) -> None:
    """Store one batch of results in one transaction (all of it, or none of it), opening
    and closing the file (the job itself keeps it open across batches: ingest_writer)."""
    tables, errors = batch_tables(explanations, originals, signal_rows, errors, ranks)
    write_path.write_batch(path, tables, run_id, counters, errors)


def probe_table(rows: list[tuple]) -> write_path.Rows:
    """probes.probe_rows' rows, for write_path.write_batch."""
    return write_path.Rows("model_probes", probes.PROBE_COLUMNS, rows)


def ingest_writer(
    path: Path, run_id: str, counters: write_path.RunCounters, policy: HoldPolicy = HoldPolicy()
) -> writer.BatchWriter:
    """The ingest job's writer: called with (explanations, originals, signal rows,
    errors) per batch, it stores each batch in one transaction on a background thread,
    keeping the file open across batches as `policy` allows (jobs.writer)."""
    return writer.BatchWriter(path, run_id, counters, policy, to_tables=batch_tables)


def clip_sources(path: Path, clip_ids: list[int], *, read_only: bool = False) -> list[ClipSource]:
    """Where the clips' audio is (blob or file), read from the warehouse at `path`.

    `read_only` for a shard job, which writes elsewhere; a job writing `path` opens it
    as its writer thread does (one DuckDB instance per file and process)."""
    from sigwarehouse.audio import clip_sources as sources

    with store.opened(path, read_only=read_only) as con:
        return sources(con, clip_ids)


def stored_masks(
    path: Path, pairs: list[tuple[str, int]], params_hash: str, *, read_only: bool = False
) -> list[ingest_batch.StoredMasks]:
    """The stored masks of (source model, clip) pairs that cross-filling evaluates."""
    with store.opened(path, read_only=read_only) as con:
        return stored_masks_on(con, pairs, params_hash)


def stored_masks_on(
    con: duckdb.DuckDBPyConnection, pairs: list[tuple[str, int]], params_hash: str
) -> list[ingest_batch.StoredMasks]:
    """stored_masks on an open connection."""
    return con.execute(
        "SELECT e.model, e.clip_id, e.n_bins, e.orig_class, e.sufficient_mask,"
        " e.complete_mask, (SELECT list(r.mask ORDER BY r.rank) FROM sufficient_ranks r"
        "  WHERE r.model = e.model AND r.clip_id = e.clip_id"
        "  AND r.params_hash = e.params_hash) FROM explanations e JOIN"
        " (SELECT unnest(?::VARCHAR[]) AS m, unnest(?::INTEGER[]) AS c) p"
        " ON e.model = p.m AND e.clip_id = p.c WHERE e.params_hash = ?",
        [[m for m, _ in pairs], [c for _, c in pairs], params_hash],
    ).fetchall()


def write_rows(write: writer.BatchWriter, rows: ingest_batch.BatchRows) -> None:
    """Hand one batch's rows to the writer (its to_tables is batch_tables)."""
    write(rows.explanations, rows.originals, rows.signals, rows.errors, rows.ranks)


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
    sources = clip_sources(source or run.path, clip_ids, read_only=source is not None)
    waves = ingest_batch.load_waves(sources, device)
    rows = ingest_batch.explain_rows(plan, clip_ids, waves, models, run.run_id)
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
    sources = clip_sources(read, clip_ids, read_only=read_only)
    waves = dict(zip(clip_ids, ingest_batch.load_waves(sources, device), strict=True))
    rows = ingest_batch.cross_fill_rows(plan, stored, waves, target, run.run_id)
    rows.count_into(run.counters)
    write_rows(write, rows)


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

    `into`: a shard file (jobs.shards) to write instead of `path`, which is then only
    read (catalog, clips, other models' explanations), so many shard jobs can run at
    once on one main warehouse; `sigwh merge` folds the shards in afterwards.
    """
    per_batch = clips_per_batch or devices.clips_per_batch(device)
    with store.opened(path, read_only=True) as con:
        records = task_models(con, plan.task)
        longest = _longest_clip(con, plan.clip_ids)
    counters = write_path.RunCounters()
    models = timed_models(records, plan.task_labels, device, counters)
    plan, runtime = _runtime_choices(plan, models, device, auto_batch, longest)
    from sigwarehouse.models.precision import float32_only  # torch: loaded with the models

    source = path if into is not None else None  # where a shard job reads its clips
    with started_run(into or path, plan, counters, runtime, device, hold) as (run, write):
        if plan.probe_samples is not None:  # before any batch: no write is in flight yet
            model = models[plan.model]
            with float32_only():
                rows = probes.probe_rows(model, plan.model, plan.probe_samples, run.run_id)
            run.write([probe_table(rows)])
        for batch in chunks(plan.clip_ids, per_batch):
            _explain_batch(run, plan, batch, models, device, write, source)
            run.clock()
            if progress:
                progress(len(batch), counters)
        for pairs in chunks(plan.cross_fill, per_batch * 4):
            _cross_fill_batch(run, plan, pairs, models[plan.model], device, write, source)
            run.clock()
    return run.summary


@contextmanager
def started_run(
    path: Path,
    plan: IngestPlan,
    counters: write_path.RunCounters,
    runtime: dict,
    device: str,
    hold: HoldPolicy = HoldPolicy(),
) -> Iterator[tuple[JobRun[IngestSummary], writer.BatchWriter]]:
    """An ingest run on `path`: its parameter set stored, a `runs` row opened (and closed
    with how the block ended), and the writer its batches go through. The local job and
    the Ray driver (jobs.on_ray) both run inside it, so their runs are recorded alike."""
    with store.opened(path) as con:
        con.execute(
            "INSERT OR IGNORE INTO freqrex_params (params_hash, params) VALUES (?, ?)",
            [plan.params.hash(), json.dumps(plan.params.to_dict(), sort_keys=True)],
        )
    with (
        job_run(
            path, lambda run_id: IngestSummary(run_id, plan, counters), counters,
            job="ingest", model=plan.model, task=plan.task, dataset=",".join(plan.datasets),
            params={**plan.params.to_dict(), "runtime": runtime},
            params_hash=plan.params.hash(),
            seed=plan.params.seed, device=device,
        ) as run,
        ingest_writer(path, run.run_id, counters, hold) as write,
    ):  # fmt: skip
        yield run, write


def _longest_clip(con: duckdb.DuckDBPyConnection, clip_ids: list[int]) -> int | None:
    """The most samples of the plan's clips (what a batch size must fit), None if none."""
    if not clip_ids:
        return None
    return con.execute(
        "SELECT max(n_samples) FROM clips WHERE clip_id IN (SELECT unnest(?::INTEGER[]))",
        [list(clip_ids)],
    ).fetchone()[0]


def _runtime_choices(
    plan: IngestPlan,
    models: dict[str, AudioClassifier],
    device: str,
    auto_batch: bool,
    longest: int | None,
) -> tuple[IngestPlan, dict]:
    """The plan with its precision and batch size resolved, and the run's record of the
    runtime choices: each model's dtype and attention kernel, how the batch was sized.

    Only the explained model runs in lower precision, and only for its search: the other
    models' answers are all stored probabilities, which are float32 (see ingest_batch.explain_rows).
    """
    import torch

    from sigwarehouse.models import batching, precision

    explainer = models[plan.model]
    wanted = precision.resolve(plan.params.dtype, device)
    used = precision.name_of(explainer.use_dtype(precision.DTYPES[wanted]))
    batch_size, sized = plan.params.batch_size, "given"
    if auto_batch and longest:
        with torch.inference_mode():
            # the model itself, not its query-counting wrapper: probes are not queries
            inner = getattr(explainer, "inner", explainer)
            batch_size, sized = batching.auto_batch_size(inner, longest, batch_size)
    params = replace(plan.params, dtype=used, batch_size=batch_size)
    runtime = {
        "dtype_asked": wanted,
        "batch_size": sized,
        "models": {
            name: {"dtype": precision.name_of(m.dtype), "attention": m.attention}
            for name, m in models.items()
        },
    }
    return replace(plan, params=params), runtime


@contextmanager
def progress_bar(plan: IngestPlan) -> Iterator[Callable[[int, write_path.RunCounters], None]]:
    """A progress bar (tqdm, on stderr) over the plan's clips, showing model queries per
    second and errors; yields the `progress` callback that run_ingest takes. What `sigwh
    ingest` and `sigwh demo` show while a model explains its clips."""
    from tqdm import tqdm

    bar = tqdm(
        total=len(plan.clip_ids), unit="clip", desc=f"ingest {plan.model}", dynamic_ncols=True
    )

    def progress(done: int, counters: write_path.RunCounters) -> None:
        bar.update(done)
        bar.set_postfix(queries_s=f"{queries_per_second(counters):.0f}", errors=counters.n_errors)

    try:
        yield progress
    finally:
        bar.close()


def queries_per_second(counters: write_path.RunCounters) -> float:
    return counters.queries / counters.total_seconds if counters.total_seconds else math.nan
