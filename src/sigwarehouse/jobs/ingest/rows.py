"""What the ingest drivers read from the warehouse and store in it: a batch's rows as
tables, the writer they go through, the clips' audio and the stored masks to evaluate,
and the run that records it all (started_run). The local and the Ray drivers share it,
so their runs and rows are alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse import noise_floor, probes, store
from sigwarehouse.audio import ClipSource, clip_sources
from sigwarehouse.jobs import writer
from sigwarehouse.jobs.ingest import batch
from sigwarehouse.jobs.ingest.batch import (
    EXPLANATION_COLUMNS,
    ORIGINAL_COLUMNS,
    RANK_COLUMNS,
    SIGNAL_COLUMNS,
)
from sigwarehouse.jobs.ingest.plan import IngestPlan, IngestSummary
from sigwarehouse.jobs.skeleton import JobRun, job_run
from sigwarehouse.jobs.writer import HoldPolicy
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb


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


def write_batch(
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


def floor_table(rows: list[tuple]) -> write_path.Rows:
    """noise_floor.floor_rows' rows, for write_path.write_batch."""
    return write_path.Rows("model_noise_floors", noise_floor.FLOOR_COLUMNS, rows)


def measured(plan: IngestPlan, rows: list[tuple]) -> IngestPlan:
    """The plan with the noise floor just measured (`rows`: floor_table's) as its margin."""
    floor = rows[0][noise_floor.FLOOR_COLUMNS.index("noise_floor")]
    return replace(plan, noise_floor=float(floor), floor_clips=[])


def ingest_writer(
    path: Path, run_id: str, counters: write_path.RunCounters, policy: HoldPolicy = HoldPolicy()
) -> writer.BatchWriter:
    """The ingest job's writer: called with (explanations, originals, signal rows,
    errors) per batch, it stores each batch in one transaction on a background thread,
    keeping the file open across batches as `policy` allows (jobs.writer)."""
    return writer.BatchWriter(path, run_id, counters, policy, to_tables=batch_tables)


def read_clip_sources(
    path: Path, clip_ids: list[int], *, read_only: bool = False
) -> list[ClipSource]:
    """audio.clip_sources (where the clips' audio is: blob or file), read from the
    warehouse at `path`, which is opened for it and closed again.

    `read_only` for a shard job, which writes elsewhere; a job writing `path` opens it
    as its writer thread does (one DuckDB instance per file and process)."""
    with store.opened(path, read_only=read_only) as con:
        return clip_sources(con, clip_ids)


def stored_masks(
    path: Path, pairs: list[tuple[str, int]], params_hash: str, *, read_only: bool = False
) -> list[batch.StoredMasks]:
    """The stored masks of (source model, clip) pairs that cross-filling evaluates."""
    with store.opened(path, read_only=read_only) as con:
        return stored_masks_on(con, pairs, params_hash)


def stored_masks_on(
    con: duckdb.DuckDBPyConnection, pairs: list[tuple[str, int]], params_hash: str
) -> list[batch.StoredMasks]:
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


def write_rows(write: writer.BatchWriter, rows: batch.BatchRows) -> None:
    """Hand one batch's rows to the writer (its to_tables is batch_tables)."""
    write(rows.explanations, rows.originals, rows.signals, rows.errors, rows.ranks)


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
    the Ray driver (on_ray.py) both run inside it, so their runs are recorded alike."""
    with store.opened(path) as con:
        con.execute(
            "INSERT OR IGNORE INTO freqrex_params (params_hash, params) VALUES (?, ?)",
            [plan.params.hash(), json.dumps(plan.params.to_dict(), sort_keys=True)],
        )
        # the first set a warehouse is built with becomes its current one (the views
        # show it, later ingests continue it); a later set never replaces it
        con.execute(
            "INSERT OR IGNORE INTO current_params (params_hash) VALUES (?)", [plan.params.hash()]
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
