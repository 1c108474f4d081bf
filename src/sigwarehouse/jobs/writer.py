"""A job's batch writer: one transaction per batch, several batches per open of the file.

Opening a warehouse (its checks included) and closing it (DuckDB checkpoints on close)
cost about as much as writing a 32-clip ingest batch (bench/bench_write.py), so the
writer keeps its connection open while batches arrive quickly and closes it

- after `HoldPolicy.max_batches` batches, or `max_hold_s` seconds after it opened,
  so another process waiting for the file (a second job, `sigwh report`) gets in
  within about that long (DuckDB lets one process write a file at a time);
- when no batch has come for `idle_s` seconds, so a slow job (a big model on a CPU)
  does not sit on the file between its batches;
- after a batch that failed, so the next batch starts from a fresh connection.

Every batch is still its own transaction, committed before the next one starts:
DuckDB writes a committed transaction to the file's write-ahead log before COMMIT
returns, and replays that log when the file is next opened, so a job killed at any
moment (SIGKILL included, connection open or not) loses only the batch it was writing.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse import store
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class HoldPolicy:
    """How long a writer keeps the warehouse open between batches (see the module doc).

    The defaults hold the file at most 2 s at a time: another process's `opened()`
    waits for the lock with back-off (up to 60 s), so it gets in after one hold.
    """

    max_batches: int = 16
    max_hold_s: float = 2.0
    idle_s: float = 0.5

    def __post_init__(self) -> None:
        if self.max_batches < 1:
            raise ValueError("max_batches must be >= 1 (1: open and close for every batch)")
        if self.max_hold_s < 0 or self.idle_s < 0:
            raise ValueError("max_hold_s and idle_s must be >= 0 seconds")


# Open and close the file for every batch: how jobs wrote before (bench/bench_write.py).
EVERY_BATCH = HoldPolicy(max_batches=1, max_hold_s=0.0, idle_s=0.0)


def hold_at_most(seconds: float) -> HoldPolicy:
    """The policy of `sigwh ingest --hold-s`: the default's, holding the file at most
    `seconds` at a time; 0 closes it after every batch (EVERY_BATCH)."""
    return EVERY_BATCH if seconds == 0 else HoldPolicy(max_hold_s=seconds)


class HeldWarehouse:
    """A read-write connection to `path` that `write` opens when needed and closes as
    `policy` says. Not thread-safe: one thread (the writer's) uses it."""

    def __init__(self, path: Path, policy: HoldPolicy = HoldPolicy()):
        self.path, self.policy = Path(path), policy
        self.con: duckdb.DuckDBPyConnection | None = None
        self.opened_at = 0.0
        self.batches = 0  # written through the current connection
        self.opens = 0  # connections opened so far (what the policy saves)

    @property
    def is_open(self) -> bool:
        return self.con is not None

    def write(
        self,
        tables: list[write_path.Rows],
        run_id: str,
        counters: write_path.RunCounters,
        errors: list[dict] | None = None,
    ) -> None:
        """Store one batch (write_path.store_batch: rows, errors, counters) in one transaction,
        then close the connection if the policy says so. A batch that fails is rolled
        back whole and closes the connection before its error is raised."""
        if self.con is None:
            # Only tables are written: the package's views are not installed (see opened).
            self.con = store.connect(self.path, package_views=False)
            try:
                store.require_current(self.con, self.path)
            except BaseException:
                self.close()
                raise
            self.opened_at, self.batches = time.monotonic(), 0
            self.opens += 1
        try:
            write_path.store_batch(self.con, tables, run_id, counters, errors)
        except BaseException:
            self.close()
            raise
        self.batches += 1
        held = time.monotonic() - self.opened_at
        if self.batches >= self.policy.max_batches or held >= self.policy.max_hold_s:
            self.close()

    def close(self) -> None:
        """Close the connection (DuckDB checkpoints the file and releases its lock)."""
        if self.con is not None:
            con, self.con = self.con, None
            con.close()


_STOP = object()


class BatchWriter:
    """Writes a job's batches on a background thread, one at a time and in order, so the
    next batch's model work overlaps the DuckDB transaction; the thread keeps the file
    open across batches as `policy` allows (HeldWarehouse).

    At most one write is in flight: calling it waits for the previous write (and raises
    its error). Leaving the `with` block waits for the last write, whatever happened,
    and closes the file.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        counters: write_path.RunCounters,
        policy: HoldPolicy = HoldPolicy(),
        to_tables: Callable[..., tuple[list[write_path.Rows], list[dict]]] | None = None,
    ):
        """`to_tables(*rows)` turns what the job passes to a call into (tables, errors);
        by default a call passes (tables, errors) itself."""
        self.run_id, self.counters = run_id, counters
        self.held = HeldWarehouse(path, policy)
        self.to_tables = to_tables or (lambda tables, errors=None: (tables, errors))
        self.inbox: queue.Queue = queue.Queue(maxsize=1)
        self.pending: Future | None = None
        self.thread = threading.Thread(target=self._serve, name="sigwh-writer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """The writer thread: write each batch as it comes; close the file when idle."""
        try:
            while True:
                wait = self.held.policy.idle_s if self.held.is_open else None
                try:
                    item = self.inbox.get(timeout=wait)
                except queue.Empty:  # no batch for idle_s: let other processes in
                    self.held.close()
                    continue
                if item is _STOP:
                    return
                done, tables, errors, counters = item
                try:
                    self.held.write(tables, self.run_id, counters, errors)
                except BaseException as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self.held.close()

    def __call__(self, *rows) -> None:
        """Queue one batch for writing (after waiting for the previous one)."""
        self.wait()
        tables, errors = self.to_tables(*rows)
        snapshot = copy.copy(self.counters)  # the counters as of this batch
        done: Future = Future()
        self.inbox.put((done, tables, errors, snapshot))
        self.pending = done

    def wait(self) -> None:
        """Wait for the write in flight, if any; raise its error."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        try:
            if exc_type is None:
                self.wait()
            elif self.pending is not None:
                self.pending.exception()  # let the write finish; the body's error wins
        finally:
            self.inbox.put(_STOP)
            self.thread.join()
