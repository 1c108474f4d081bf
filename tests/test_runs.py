"""The `runs` record of every job (jobs/runs.py) on real warehouse files: what a run row
holds when a job starts, how counters and the final status are written, how a killed
job's row is found and marked, and what an error row keeps."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from sigwarehouse import __version__, store
from sigwarehouse.freqrex.toy import train_tone_classifier
from sigwarehouse.models import counting
from sigwarehouse.store import write_path

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

COLUMNS = (
    "job, model, task, dataset, params, params_hash, seed, device, host, pid, status,"
    " clips_done, queries, model_seconds, total_seconds, n_errors, message,"
    " started_at, ended_at, code_version"
)


def run_row(path: Path, run_id: str) -> dict:
    with store.opened(path, read_only=True) as con:
        cur = con.execute(f"SELECT {COLUMNS} FROM runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cur.description]
        (row,) = cur.fetchall()
    return dict(zip(names, row, strict=True))


def start(path: Path, **over) -> str:
    spec = dict(job="ingest", model="m0", task="t", dataset="d", params={"b": 1, "a": [2, 3]},
                params_hash="0123456789abcdef", seed=7, device="cpu") | over  # fmt: skip
    with store.opened(path) as con:
        return write_path.start_run(con, **spec)


def test_a_started_run_records_what_made_its_rows(wh_path: Path) -> None:
    before = datetime.now()
    run_id = start(wh_path)
    row = run_row(wh_path, run_id)
    assert (row["job"], row["model"], row["task"], row["dataset"]) == ("ingest", "m0", "t", "d")
    assert json.loads(row["params"]) == {"a": [2, 3], "b": 1}
    assert row["params"] == json.dumps({"a": [2, 3], "b": 1})  # keys sorted: comparable text
    assert (row["params_hash"], row["seed"], row["device"]) == ("0123456789abcdef", 7, "cpu")
    assert (row["host"], row["pid"], row["status"]) == (socket.gethostname(), os.getpid(),
                                                        "running")  # fmt: skip
    assert before <= row["started_at"] <= datetime.now() and row["ended_at"] is None
    assert row["code_version"] == write_path.code_version()


def test_code_version_names_the_package_and_the_commit() -> None:
    version = write_path.code_version()
    assert version == __version__ or re.fullmatch(
        re.escape(__version__) + r"\+g[0-9a-f]{12}(-dirty)?", version
    )
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    if head:
        assert f"+g{head}" in version


def test_update_writes_counters_and_keeps_status_until_one_is_given(wh_path: Path) -> None:
    run_id = start(wh_path)
    counters = write_path.RunCounters(clips_done=3, queries=120, model_seconds=1.5,
                                total_seconds=2.25, n_errors=1)  # fmt: skip
    with store.opened(wh_path) as con:
        write_path.update_run(con, run_id, counters)
    row = run_row(wh_path, run_id)
    assert (row["clips_done"], row["queries"], row["model_seconds"], row["total_seconds"],
            row["n_errors"]) == (3, 120, 1.5, 2.25, 1)  # fmt: skip
    assert row["status"] == "running" and row["ended_at"] is None and row["message"] is None
    with store.opened(wh_path) as con:
        write_path.update_run(con, run_id, counters, "failed", "boom")
        write_path.update_run(
            con, run_id, write_path.RunCounters(clips_done=4)
        )  # a late counter update
    row = run_row(wh_path, run_id)
    assert (row["status"], row["message"], row["clips_done"]) == ("failed", "boom", 4)
    assert row["ended_at"] is not None and row["ended_at"] >= row["started_at"]


class _Summary:
    status = None


@pytest.mark.parametrize(
    ("raised", "status"), [(None, "done"), (KeyboardInterrupt, "interrupted"),
                           (ValueError, "failed")],
)  # fmt: skip
def test_recorded_writes_how_the_job_ended(wh_path: Path, raised, status) -> None:
    run_id = start(wh_path)
    counters, summary = write_path.RunCounters(clips_done=2), _Summary()
    started = time.perf_counter() - 5.0  # the job began five seconds ago
    try:
        with write_path.recorded(wh_path, run_id, counters, summary, started):
            if raised is not None:
                raise raised("stopped")
    except BaseException as exc:  # noqa: BLE001 - re-raised by recorded: the kind is checked
        assert raised is not None and isinstance(exc, raised)
    else:
        assert raised is None
    row = run_row(wh_path, run_id)
    assert summary.status == row["status"] == status
    # a failed run keeps what its committed batches stored (none here): the batch that
    # failed was counted in memory but never stored
    assert row["clips_done"] == (0 if raised is ValueError else 2)
    assert row["ended_at"] is not None
    assert 5.0 <= row["total_seconds"] < 60
    assert row["message"] == ("ValueError('stopped')" if raised is ValueError else None)


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_jobs_row_is_marked_abandoned_by_the_next_job(wh_path: Path) -> None:
    dead, alive, elsewhere, finished = (start(wh_path) for _ in range(4))
    # SIGHUP as by default (a shell's nohup would leave it ignored): any signal sent to
    # the worker must end it, so that the check below sees it
    code = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); time.sleep(60)"
    worker = subprocess.Popen([sys.executable, "-c", code])
    with store.opened(wh_path) as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [worker.pid, alive])
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [_dead_pid(), dead])
        con.execute("UPDATE runs SET pid = ?, host = 'another-host' WHERE run_id = ?",
                    [_dead_pid(), elsewhere])  # fmt: skip
        con.execute("UPDATE runs SET status = 'done', pid = ? WHERE run_id = ?",
                    [_dead_pid(), finished])  # fmt: skip
        assert write_path.mark_abandoned(con) == 1
        assert write_path.mark_abandoned(con) == 0
    with pytest.raises(subprocess.TimeoutExpired):  # a signal takes a moment to act
        worker.wait(timeout=0.5)  # looking for a process must not signal it
    worker.kill()
    worker.wait()
    status = {r: run_row(wh_path, r)["status"] for r in (dead, alive, elsewhere, finished)}
    assert status == {dead: "abandoned", alive: "running", elsewhere: "running",
                      finished: "done"}  # fmt: skip
    assert "killed?" in run_row(wh_path, dead)["message"]


def test_a_start_marks_abandoned_runs_first(wh_path: Path) -> None:
    dead = start(wh_path)
    with store.opened(wh_path) as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [_dead_pid(), dead])
    start(wh_path)
    assert run_row(wh_path, dead)["status"] == "abandoned"


def test_an_error_row_keeps_its_fields_and_at_most_2000_characters(wh_path: Path) -> None:
    run_id = start(wh_path)
    with store.opened(wh_path) as con:
        write_path.record_error(
            con, run_id, model="m0", clip_id=4, stage="explain", error="x" * 2500
        )
        write_path.record_error(con, run_id, model=None, clip_id=None, stage="load", error="short")
        rows = con.execute(
            "SELECT model, clip_id, stage, error FROM job_errors WHERE run_id = ? ORDER BY stage",
            [run_id],
        ).fetchall()
    assert rows == [("m0", 4, "explain", "x" * 2000), (None, None, "load", "short")]


class _Slow:
    """The tone model, taking at least 50 ms a forward pass."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def forward(self, waves):
        time.sleep(0.05)
        return self.model.forward(waves)


def test_timed_counts_rows_and_seconds_and_answers_as_the_model() -> None:
    model = _Slow(train_tone_classifier(n_samples=1000, seed=0, steps=5))
    counters = write_path.RunCounters()
    timed = counting.timed(model, counters)
    assert (timed.labels, timed.sample_rate, timed.device) == (model.labels, model.sample_rate,
                                                               model.device)  # fmt: skip
    waves = torch.randn(3, 1000) * 0.1
    start = time.perf_counter()
    torch.testing.assert_close(timed(waves), model.model(waves))
    timed(waves[:2])
    wall = time.perf_counter() - start
    assert counters.queries == 5 and 0.1 <= counters.model_seconds <= wall  # both passes


def test_timed_passes_a_precision_to_the_model_it_wraps() -> None:
    """HiddenOffset (tests/precision_models.py) answers "both" to a 500 Hz tone alone
    only in a 16-bit float: the answer shows the precision the wrapped model ran in."""
    from precision_models import LOW_HZ, N_SAMPLES, SAMPLE_RATE, HiddenOffset

    model = HiddenOffset()
    timed = counting.timed(model, write_path.RunCounters())
    low = torch.sin(2 * torch.pi * LOW_HZ * torch.arange(N_SAMPLES) / SAMPLE_RATE)[None] * 0.5
    assert timed.dtype == torch.float32 and int(timed(low).argmax()) == 1  # "other"
    assert timed.use_dtype(torch.bfloat16) == torch.bfloat16
    assert timed.dtype == model.dtype == torch.bfloat16
    assert int(timed(low).argmax()) == 0  # "both": the model itself ran in bfloat16
