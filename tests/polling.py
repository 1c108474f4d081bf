"""Stopping a job in another process once it has stored its first batch, and no later."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import duckdb

from sigwarehouse import store
from sigwarehouse.errors import WarehouseError

# `sigwh ingest` arguments of a job watched here: it lets go of the file after every
# batch, so a poll gets in between two batches (see signal_after_first_batch)
LET_GO_EACH_BATCH = ["--hold-s", "0"]


def signal_after_first_batch(
    job: subprocess.Popen,
    path: Path,
    count_sql: str,
    params: list | None = None,
    sig: int = signal.SIGKILL,
    timeout_s: float = 180,
) -> int:
    """Poll `count_sql` on the file every 50 ms until it counts a row, the job ends, or
    timeout_s passes; then send `sig` to the job. Returns the count the signal followed.

    The signal is sent while the poll's read-only connection is still open. A job opens
    the file for writing only to store a batch, and DuckDB lets no process write while
    another reads, so no batch can be stored between the count and the signal: the job
    is stopped after exactly `count` stored rows whatever the machine's speed (a fast
    job once stored its last clip between a poll and the kill). For that count to be
    its first batch's, the job must let go of the file after each batch
    (LET_GO_EACH_BATCH): a writer holding it stores several batches unseen. Each poll opens
    the file without the package's views: installing them costs more CPU than the
    count, CPU the watched job needs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
        try:  # no waiting with back-off: the file is free only between two batches
            con = _open_at_once(path, deadline)
        except TimeoutError:
            break
        with con:
            done = con.execute(count_sql, params or []).fetchone()[0]
            if done >= 1 and job.poll() is None:
                job.send_signal(sig)
                return done
    raise AssertionError(
        f"the job ended (exit {job.poll()}) or timed out before a poll saw a stored row"
    )


def _open_at_once(path: Path, deadline: float) -> duckdb.DuckDBPyConnection:
    """The file opened read-only as soon as the job lets go of it, trying every 10 ms
    (`store.opened` backs off up to a second between tries, and may miss the
    moment between two batches again and again)."""
    while time.monotonic() < deadline:
        try:
            return store.connect(path, read_only=True, wait_s=0, package_views=False)
        except WarehouseError as exc:
            if "held by another process" not in str(exc):
                raise
            time.sleep(0.01)
    raise TimeoutError(path)
