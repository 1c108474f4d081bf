"""What an ingest job will do (IngestPlan, planned from the warehouse by plan_ingest),
and what it did (IngestSummary): the same for every driver (local, Ray, shard).

A plan lists the clips M still has to explain with these parameters, the other models'
stored explanations M has not yet been evaluated on, whether M's probes are missing, and
M's rendering noise floor (the margin its search starts from: noise_floor.py) or the
clips to measure it on, so a rerun does exactly the work that is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigwarehouse import noise_floor, probes
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.records import (
    current_params,
    model_record,
    task_datasets,
    task_labels,
    task_models,
)
from sigwarehouse.signals import SIGNAL_KINDS
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb


# A clip's explanation cost, in model queries per responsibility tree, where nothing
# stored tells better. Engine 6: the demo's models (quick preset, two trees) took 290 to
# 980 a clip on average, the default preset (four trees) about 1,660 on vc3; engine 7
# asks fewer (earshot, two light trees: 320 a clip in tests/test_demo.py).
QUERIES_PER_ITERATION = 250


def past_queries_per_clip(
    con: duckdb.DuckDBPyConnection, model: str, task: str, params_hash: str
) -> int | None:
    """What a clip's explanation cost, by what is stored with these parameters: the mean
    queries of the model's own explanations, else of the task's other models', else of
    any model's (None: nothing stored with them). A mean, not a median: a job's queries
    are a sum over its clips, and a few clips cost several times the others."""
    row = con.execute(
        """
        SELECT coalesce(
            avg(e.queries) FILTER (WHERE e.model = ?),
            avg(e.queries) FILTER (WHERE m.task = ?),
            avg(e.queries))
        FROM explanations AS e JOIN models AS m ON m.model = e.model
        WHERE e.params_hash = ?
        """,
        [model, task, params_hash],
    ).fetchall()[0][0]
    return None if row is None else round(row)


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
    # M's stored rendering noise floor: the decision margin its search starts from
    noise_floor: float | None = None
    floor_clips: list[int] = field(default_factory=list)  # to measure it on, before the search
    # the warehouse's current set (hash, its explanations of the task), else the set the
    # task's views show; None: no set yet, these parameters become the current set
    shown_params: tuple[str, int] | None = None

    def is_empty(self) -> bool:
        """True when the job would store nothing: no clip, no signal and no probe is missing."""
        return not self.clip_ids and not self.cross_fill and self.probe_samples is None

    def describe(self) -> str:
        at = "none (stored)" if self.probe_samples is None else f"at {self.probe_samples} samples"
        if self.floor_clips:
            floor = f"to measure first, on {len(self.floor_clips)} clip(s) of the task"
        elif self.noise_floor is None:
            floor = "not measured (nothing to explain)"
        else:
            floor = f"{self.noise_floor:.3g} (stored): the search's starting decision margin"
        lines = [
            f"model {self.model} (task {self.task}, datasets {', '.join(self.datasets) or '-'})",
            f"  parameters {self.params.hash()}: {json.dumps(self.params.to_dict())}",
            f"  clips to explain: {len(self.clip_ids)}",
            f"  signals evaluated on: {', '.join(self.targets)}",
            f"  other models' stored explanations to evaluate on {self.model}: "
            f"{len(self.cross_fill)}",
            f"  probes of {self.model} ({', '.join(probes.PROBES)}) to store: {at}",
            f"  rendering noise floor of {self.model}: {floor}",
            f"  estimated model queries: ~{self.estimated_queries():,}",
        ]
        ph = self.params.hash()
        if self.shown_params is None:
            lines.append(f"  parameters {ph} become the warehouse's current set")
        elif self.shown_params[0] != ph:
            shown, n = self.shown_params
            lines.append(
                f"  note: the warehouse's current parameter set is {shown} ({n:,} explanations "
                f"of task {self.task}), which the views show and `sigwh ingest` continues; "
                f"these parameters' results stay apart, reachable with "
                f"alpha_transferability_for('{ph}') and the other _for macros"
            )
        return "\n".join(lines)

    def estimated_queries(self) -> int:
        per_clip = self.est_queries_per_clip + len(SIGNAL_KINDS) * len(self.targets)
        probe_queries = 0 if self.probe_samples is None else len(probes.PROBES)
        floor_queries = len(self.floor_clips) * noise_floor.QUERIES_PER_CLIP
        return (
            len(self.clip_ids) * per_clip
            + len(self.cross_fill) * len(SIGNAL_KINDS)
            + probe_queries
            + floor_queries
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
    past = past_queries_per_clip(con, model, task, params.hash())
    floor = noise_floor.stored_floor(con, model)
    current = current_params(con)
    shown = con.execute(
        "SELECT params_hash, n_explanations FROM parameter_sets WHERE task = ?"
        " AND (params_hash = ? OR (shown AND ?::VARCHAR IS NULL))",
        [task, current and current.params_hash, current and current.params_hash],
    ).fetchone()
    if shown is None and current is not None:  # the task has no explanation with it yet
        shown = (current.params_hash, 0)
    return IngestPlan(
        model=model,
        task=task,
        task_labels=labels,
        datasets=datasets,
        params=params,
        targets=[m.model for m in task_models(con, task)],
        clip_ids=clip_ids,
        cross_fill=[(m, c) for m, c in cross],
        est_queries_per_clip=past or QUERIES_PER_ITERATION * params.iterations,
        probe_samples=probes.pending_length(con, model, task),
        noise_floor=floor,
        # measured only when the model is about to explain something
        floor_clips=noise_floor.measuring_clips(con, task) if floor is None and clip_ids else [],
        shown_params=None if shown is None else (shown[0], int(shown[1])),
    )
