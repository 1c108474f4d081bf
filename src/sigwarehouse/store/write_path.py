"""The write path: everything a job stores goes through here, in short transactions.

A job's rows go in as Arrow tables, one INSERT per table and batch (insert_rows), with
the counts of new signals (transfer_counts.py) in the same transaction as the signals;
a batch, its errors (`job_errors`) and its run's counters are stored whole or not at all
(write_batch, store_batch).

The `runs` table: every job records what made its rows, and how it ended. A run row is
written when a job starts (status `running`) and updated as it goes. A job that is
SIGKILLed leaves `running` behind; the next job on the same host notices that its
process is gone and marks it `abandoned`, so `runs` never claims work in progress that
nobody is doing.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from sigwarehouse import __version__
from sigwarehouse.store import connection, transfer_counts
from sigwarehouse.store.atomic import transaction

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def code_version() -> str:
    """The package version, plus the git commit (and `-dirty`) when run from a checkout."""
    repo = Path(__file__).resolve().parents[3]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'-dirty' if dirty else ''}"


@dataclass
class RunCounters:
    """What a job has done so far; written to its run row with every batch."""

    clips_done: int = 0
    queries: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0
    n_errors: int = 0
    extra: dict = field(default_factory=dict)


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    job: str,
    model: str | None,
    task: str | None,
    dataset: str | None,
    params: dict,
    params_hash: str | None,
    seed: int | None,
    device: str,
) -> str:
    """Insert a `running` row for a new job and return its run id."""
    mark_abandoned(con)
    run_id = str(uuid.uuid4())
    con.execute(
        "INSERT INTO runs (run_id, job, model, task, dataset, params, params_hash, seed,"
        " code_version, device, host, pid, started_at, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
        [
            run_id,
            job,
            model,
            task,
            dataset,
            json.dumps(params, sort_keys=True),
            params_hash,
            seed,
            code_version(),
            device,
            socket.gethostname(),
            os.getpid(),
            datetime.now(),
        ],
    )
    return run_id


def update_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    counters: RunCounters,
    status: str | None = None,
    message: str | None = None,
    keep_stored_counts: bool = False,
) -> None:
    """Write the counters (and, when given, the final status and message) to the run row.

    keep_stored_counts: leave clips_done and n_errors as stored (by the last batch that
    committed): what a failed job writes, whose counters in memory may count batches
    that were never stored."""
    con.execute(
        "UPDATE runs SET clips_done = CASE WHEN ? THEN clips_done ELSE ? END, queries = ?,"
        " model_seconds = ?, total_seconds = ?,"
        " n_errors = CASE WHEN ? THEN n_errors ELSE ? END, status = coalesce(?, status),"
        " message = coalesce(?, message),"
        " ended_at = CASE WHEN ? IS NULL THEN ended_at ELSE ? END WHERE run_id = ?",
        [
            keep_stored_counts,
            counters.clips_done,
            counters.queries,
            counters.model_seconds,
            counters.total_seconds,
            keep_stored_counts,
            counters.n_errors,
            status,
            message,
            status,
            datetime.now(),
            run_id,
        ],
    )


@contextmanager
def recorded(
    path: Path, run_id: str, counters: RunCounters, summary: Any, started: float
) -> Iterator[None]:
    """Run a job's body and record how it ended: `done`, `interrupted` (Ctrl-C) or `failed`.

    Sets `summary.status`, re-raises what the body raised, and always writes the final
    counters and status to the run row (its committed batches stay whatever happens).
    A failed run keeps the clips and errors its committed batches stored: the batch that
    failed (a full disk, an I/O error) was counted in memory but never stored.
    """
    try:
        yield
        summary.status = "done"
    except KeyboardInterrupt:
        summary.status = "interrupted"
        raise
    except Exception as exc:
        summary.status = "failed"
        counters.extra["message"] = repr(exc)
        raise
    finally:
        counters.total_seconds = time.perf_counter() - started
        with connection.opened(path) as con:
            update_run(
                con, run_id, counters, summary.status, counters.extra.get("message"),
                keep_stored_counts=summary.status == "failed",
            )  # fmt: skip


@dataclass(frozen=True)
class Rows:
    """Rows for one table: each a tuple of `columns`, in that order. The INSERT names the
    columns (it never relies on the table's order), so a migration that adds or reorders
    columns cannot shift values into the wrong one."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple]


def write_batch(
    path: Path,
    batches: list[Rows],
    run_id: str,
    counters: RunCounters,
    errors: list[dict] | None = None,
) -> None:
    """Insert each Rows (see insert_rows), record `errors` (record_error keywords) and
    update the run's counters, all in one transaction: a batch is stored whole or not."""
    # Only tables are touched: the package's views are not installed (see opened).
    with connection.opened(path, package_views=False) as con:
        store_batch(con, batches, run_id, counters, errors)


def store_batch(
    con: duckdb.DuckDBPyConnection,
    batches: list[Rows],
    run_id: str,
    counters: RunCounters,
    errors: list[dict] | None = None,
) -> None:
    """write_batch on a connection already open (jobs.writer keeps one across batches):
    the rows, the errors and the counters in one transaction, committed on return."""
    with transaction(con):
        insert_rows(con, batches)
        for e in errors or []:
            record_error(con, run_id, **e)
        update_run(con, run_id, counters)


# Tables whose natural key no index keeps: at study scale the index cost most of each
# row's bytes (migration 0007). insert_rows keeps the key instead: it inserts only rows
# whose key is not stored yet, inside the batch's transaction, as INSERT OR IGNORE does.
# Only signal_probs: insert_rows counts the rows it inserts there into transfer_counts.
UNINDEXED_KEYS: dict[str, tuple[str, ...]] = {
    "signal_probs": ("source_model", "clip_id", "params_hash", "kind", "target_model"),
}


def insert_rows(con: duckdb.DuckDBPyConnection, batches: list[Rows]) -> None:
    """INSERT OR IGNORE each Rows into its table, in one statement per table.

    The rows go in as one Arrow table that DuckDB scans: executemany binds and runs one
    statement per row, which took ~3.7 s for a 32-clip ingest batch against ~30 ms this
    way (bench/bench_write.py). The semantics are executemany's: a row whose key is
    stored already is skipped, and of rows sharing a key the first offered wins (chosen
    here, as DuckDB does not promise which one a single INSERT keeps). DuckDB converts
    the values to the columns' types, as it does bound parameters. A table without a
    primary key gets a plain INSERT (DuckDB refuses OR IGNORE there), unless
    UNINDEXED_KEYS names its key: then the rows whose key is stored are left out by an
    anti-join, whose scan of the stored rows is limited to the batch's clip ids (so
    DuckDB's zone maps skip most of a big table).
    """
    keys = _primary_keys(con)
    new_signals: list[str] = []  # temp tables of the signal_probs rows inserted, to count
    for rows in batches:
        if not rows.rows:
            continue
        width = len(rows.columns)
        if any(len(r) != width for r in rows.rows):
            raise ValueError(f"{rows.table}: every row must have {width} values {rows.columns}")
        key = keys.get(rows.table) or list(UNINDEXED_KEYS.get(rows.table, ()))
        offered = rows.rows
        if key and all(k in rows.columns for k in key):
            at = [rows.columns.index(k) for k in key]
            seen: set[tuple] = set()
            offered = []
            for r in rows.rows:
                k = tuple(r[i] for i in at)
                if k not in seen:
                    seen.add(k)
                    offered.append(r)
        name = f"_sigwh_rows_{rows.table}"
        cols = ", ".join(f'"{c}"' for c in rows.columns)
        con.register(name, arrow_table(Rows(rows.table, rows.columns, offered)))
        if rows.table in UNINDEXED_KEYS and rows.table not in keys:  # signal_probs
            new_signals.append(_insert_new_keys(con, rows, name, cols, offered, len(new_signals)))
        else:
            verb = "INSERT OR IGNORE" if key else "INSERT"
            con.execute(f'{verb} INTO "{rows.table}" ({cols}) SELECT {cols} FROM "{name}"')
        # Not in a `finally`: after a failed INSERT the transaction is aborted and
        # unregister would raise over the real error; a later register replaces the name.
        con.unregister(name)
    # The per-cell counts the α and β views read (transfer_counts.py), in the same
    # transaction; counted after every table of the batch, as they read its explanations.
    for table in new_signals:
        transfer_counts.add(con, table)
        con.execute(f'DROP TABLE "{table}"')


def arrow_table(rows: Rows) -> pa.Table:
    """The rows as an Arrow table, one array per column: Arrow infers each column's type
    from the values and DuckDB casts it to the table's on insert."""
    import pyarrow as pa  # pyarrow: a tenth of a second the CLI's start-up does not pay

    arrays = [pa.array(c) for c in zip(*rows.rows, strict=True)]
    return pa.table(arrays, names=list(rows.columns))


def _insert_new_keys(
    con: duckdb.DuckDBPyConnection,
    rows: Rows,
    name: str,
    cols: str,
    offered: list[tuple],
    counter: int,
) -> str:
    """INSERT the registered rows whose UNINDEXED_KEYS key is not stored, sorted by key
    (long runs of equal values compress well). The rows inserted stay in a temporary
    table, whose name (numbered by `counter`) is returned: insert_rows counts them,
    then drops it."""
    key = UNINDEXED_KEYS[rows.table]
    if "clip_id" not in rows.columns or any(k not in rows.columns for k in key):
        raise ValueError(f"{rows.table}: rows must carry the key columns {key}")
    clip_ids = [r[rows.columns.index("clip_id")] for r in offered]
    same = " AND ".join(f'stored."{k}" = new."{k}"' for k in key)
    order = ", ".join(f'"{k}"' for k in ("params_hash", "source_model", "kind", "target_model"))
    # with the table's own column types: a count must see the FLOAT that is stored
    new = f"_sigwh_new_{rows.table}_{counter}"
    con.execute(f'CREATE TEMP TABLE "{new}" AS FROM "{rows.table}" LIMIT 0')
    con.execute(
        f'INSERT INTO "{new}" ({cols}) SELECT {cols} FROM "{name}" AS new'
        f' WHERE NOT EXISTS (SELECT 1 FROM "{rows.table}" AS stored'
        f" WHERE stored.clip_id BETWEEN ? AND ? AND {same})",
        [min(clip_ids), max(clip_ids)],
    )
    con.execute(
        f'INSERT INTO "{rows.table}" ({cols}) SELECT {cols} FROM "{new}" ORDER BY {order}, clip_id'
    )
    return new


def _primary_keys(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The primary-key columns of each table of the warehouse that has one (one query for
    all tables: a batch writes several)."""
    found = con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints()"
        " WHERE database_name = current_database() AND schema_name = 'main'"
        " AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return {table: list(cols) for table, cols in found}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned(con: duckdb.DuckDBPyConnection) -> int:
    """Mark `running` rows of this host whose process is gone as `abandoned`; return how many."""
    rows = con.execute(
        "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?",
        [socket.gethostname()],
    ).fetchall()
    dead = [str(run_id) for run_id, pid in rows if pid is not None and not _alive(pid)]
    for run_id in dead:
        con.execute(
            "UPDATE runs SET status = 'abandoned', message = 'the process ended without "
            "finishing (killed?); its committed batches are kept' WHERE run_id = ?",
            [run_id],
        )
    return len(dead)


def record_error(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    model: str | None,
    clip_id: int | None,
    stage: str,
    error: str,
) -> None:
    con.execute(
        "INSERT INTO job_errors (run_id, model, clip_id, stage, error) VALUES (?, ?, ?, ?, ?)",
        [run_id, model, clip_id, stage, error[:2000]],
    )
