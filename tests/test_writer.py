"""The job writer that keeps the warehouse open across batches (jobs/writer.py), on real
DuckDB files: the same rows as opening per batch, the file let go by its policy, a
failed batch stores nothing and does not stop the next, and SIGKILL with the file open
loses only the batch in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_write_path import ingest_batch, snapshot, start, write

from sigwarehouse import store
from sigwarehouse.jobs import ingest
from sigwarehouse.jobs.writer import EVERY_BATCH, HeldWarehouse, HoldPolicy, hold_at_most
from sigwarehouse.store import write_path

REPO = Path(__file__).resolve().parents[1]


def batches(run_id: str, n: int, clips: int = 3) -> list[tuple]:
    rng = np.random.default_rng(7)
    return [
        ingest_batch(rng, list(range(1 + b * clips, 1 + (b + 1) * clips)), run_id) for b in range(n)
    ]


def other_process_can_write(path: Path) -> bool:
    """Whether a separate process gets the file's write lock right now (no waiting)."""
    code = f"import duckdb; duckdb.connect({str(path)!r}).close()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode and "lock" not in done.stderr.lower():
        raise AssertionError(done.stderr)
    return done.returncode == 0


def test_holding_the_file_stores_what_opening_per_batch_stores(tmp_path: Path) -> None:
    paths = [store.init(tmp_path / f"{name}.duckdb")[0] for name in ("per", "held")]
    run_ids = [start(p) for p in paths]
    per_batch = batches(run_ids[0], 5)
    for rows in per_batch:
        write(paths[0], run_ids[0], rows)
    policy = HoldPolicy(max_batches=2, max_hold_s=60, idle_s=60)
    writer = ingest.ingest_writer(paths[1], run_ids[1], write_path.RunCounters(), policy)
    with writer as write_held:
        for rows in batches(run_ids[1], 5):
            write_held(*rows, [])
    assert writer.held.opens == 3  # 5 batches, 2 per open
    assert not writer.held.is_open

    def without_run_ids(snap: dict) -> dict:
        return {t: [[v for v in r if str(v) not in run_ids] for r in rows]
                for t, rows in snap.items() if t not in ("runs", "job_errors")}  # fmt: skip

    stored = [snapshot(p) for p in paths]
    assert len(stored[1]["explanations"]) == 15
    assert without_run_ids(stored[0]) == without_run_ids(stored[1])


def test_every_batch_policy_opens_the_file_for_each_batch(wh_path: Path) -> None:
    run_id = start(wh_path)
    held = HeldWarehouse(wh_path, EVERY_BATCH)
    for rows in batches(run_id, 3):
        tables, errors = ingest.batch_tables(*rows, [])
        held.write(tables, run_id, write_path.RunCounters(), errors)
        assert not held.is_open
    assert held.opens == 3


def test_the_file_is_let_go_after_max_batches_and_when_idle(wh_path: Path) -> None:
    run_id = start(wh_path)
    rows = batches(run_id, 3)
    held = HeldWarehouse(wh_path, HoldPolicy(max_batches=2, max_hold_s=60, idle_s=60))
    held.write(ingest.batch_tables(*rows[0], [])[0], run_id, write_path.RunCounters())
    assert held.is_open and not other_process_can_write(wh_path)
    held.write(ingest.batch_tables(*rows[1], [])[0], run_id, write_path.RunCounters())
    assert not held.is_open and other_process_can_write(wh_path)

    policy = HoldPolicy(max_batches=100, max_hold_s=60, idle_s=0.2)
    with ingest.ingest_writer(wh_path, run_id, write_path.RunCounters(), policy) as write_held:
        write_held(*rows[2], [])
        write_held.wait()
        time.sleep(1.0)  # no batch for longer than idle_s: the writer closed the file
        assert not write_held.held.is_open and other_process_can_write(wh_path)
    assert len(snapshot(wh_path)["explanations"]) == 9


def test_a_failed_batch_stores_nothing_and_the_next_is_written(wh_path: Path) -> None:
    run_id = start(wh_path)
    good, bad, after = batches(run_id, 3)
    broken = (bad[0], bad[1], [r[:-1] for r in bad[2]])  # signal rows a column short
    policy = HoldPolicy(max_batches=100, max_hold_s=60, idle_s=60)
    with ingest.ingest_writer(wh_path, run_id, write_path.RunCounters(), policy) as write_held:
        write_held(*good, [])
        write_held(*broken, [])
        with pytest.raises(ValueError, match="signal_probs: every row must have 10 values"):
            write_held.wait()
        assert not write_held.held.is_open  # a failed batch closes the connection
        write_held(*after, [])
    clips = sorted(r[1] for r in snapshot(wh_path)["explanations"])
    assert clips == [1, 2, 3, 7, 8, 9]


KILLED_MID_BATCH = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_write_path import ingest_batch
    from sigwarehouse.jobs import ingest
    from sigwarehouse.store import write_path
    from sigwarehouse.jobs.writer import HeldWarehouse, HoldPolicy

    run_id = {run_id!r}
    held = HeldWarehouse({path!r}, HoldPolicy(max_batches=100, max_hold_s=600, idle_s=600))
    rng = np.random.default_rng(3)
    counters = write_path.RunCounters()
    for b in range(3):
        counters.clips_done += 4
        rows = ingest_batch(rng, list(range(1 + 4 * b, 5 + 4 * b)), run_id)
        held.write(ingest.batch_tables(*rows, [])[0], run_id, counters)
    assert held.is_open  # three committed batches, the file still open
    # the fourth batch: its rows inserted, not committed, when the process is killed
    rows = ingest_batch(rng, [13, 14, 15, 16], run_id)
    held.con.execute("BEGIN TRANSACTION")
    write_path.insert_rows(held.con, ingest.batch_tables(*rows, [])[0])
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sigkill_with_the_file_held_loses_only_the_batch_in_flight(wh_path: Path) -> None:
    run_id = start(wh_path)
    script = KILLED_MID_BATCH.format(tests=str(REPO / "tests"), run_id=run_id, path=str(wh_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    stored = snapshot(wh_path)  # DuckDB replays the write-ahead log of the killed process
    assert sorted(r[1] for r in stored["explanations"]) == list(range(1, 13))
    assert len(stored["signal_probs"]) == 12 * 9
    with store.opened(wh_path, read_only=True) as con:
        (clips_done,) = con.execute(
            "SELECT clips_done FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
    assert clips_done == 12


def test_hold_policy_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        HoldPolicy(max_batches=0)
    with pytest.raises(ValueError, match="must be >= 0 seconds"):
        HoldPolicy(idle_s=-1)


def test_hold_s_zero_closes_after_every_batch_and_otherwise_bounds_the_hold() -> None:
    """`sigwh ingest --hold-s`: 0 is the open-per-batch policy; any other value keeps
    the default's batches and idle time and bounds the hold."""
    assert hold_at_most(0) == EVERY_BATCH
    assert hold_at_most(0.5) == HoldPolicy(max_hold_s=0.5)
    assert hold_at_most(2.0) == HoldPolicy()
