"""Ctrl-C: a command ends with one line and exit status 130, whether Python, DuckDB or
other native code holds the main thread when SIGINT arrives; a process that ignores
SIGINT (started in the background with `&`) goes on ignoring it.

Each process is started in a session of its own (as a terminal's foreground job, not
with the SIGINT-ignoring disposition a backgrounded shell job gets) and sent SIGINT once
it is at work. `sigwh ingest`'s own Ctrl-C test is in test_ingest.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sharing import copy_of

from sigwarehouse.cli.interrupt import MESSAGE, STATUS

# A cross join whose count takes far longer than the test: DuckDB holds the main thread
SLOW_QUERY = (
    "SELECT count(*) FROM signal_probs a, signal_probs b, signal_probs c, signal_probs d"
    " WHERE a.top1 + b.top1 + c.top1 + d.top1 = 3"
)
# native code that never looks at signals (about 6 s a million iterations per core)
HASHING = "import hashlib; hashlib.pbkdf2_hmac('sha256', b'p', b's', {n})"
# the watcher installed, the child says so in a file (its output must stay empty)
WATCHED = (
    "from sigwarehouse.cli import interrupt; interrupt.install(); "
    "open({ready!r}, 'w').close(); " + HASHING
)


def _interrupted(
    args: list[str], after_s: float, ready: Path | None = None, **popen
) -> tuple[int, str, str, float]:
    """Start `args`, send SIGINT after `after_s` (counted from when the file `ready`
    appears, if given: a busy machine can take seconds to start Python); exit status,
    stdout, stderr, and the seconds from the signal to the end."""
    job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    waited = time.monotonic()
    while ready is not None and not ready.exists() and time.monotonic() - waited < 120:
        time.sleep(0.05)
    time.sleep(after_s)
    assert job.poll() is None, "the command ended before it could be interrupted"
    job.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        out, err = job.communicate(timeout=60)
    finally:
        job.kill()
    return job.returncode, out, err, time.monotonic() - sent


def _sigwh(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), *args]


@pytest.mark.slow
def test_ctrl_c_in_a_query_ends_sql_with_one_line(small_filled, tmp_path) -> None:
    path = copy_of(small_filled[0], tmp_path)
    status, out, err, took = _interrupted(
        _sigwh(path, "sql", SLOW_QUERY), 6, start_new_session=True
    )
    assert (status, out, err) == (STATUS, "", f"{MESSAGE}\n")
    assert took < 10


@pytest.mark.slow
def test_ctrl_c_in_the_report_ends_it_with_one_line(small_filled, tmp_path) -> None:
    path = copy_of(small_filled[0], tmp_path)
    # how long a whole report takes here (seconds on this warehouse, more on a busy
    # machine): interrupted at half of that, it is at work
    started = time.monotonic()
    subprocess.run(_sigwh(path, "report", "--out", str(tmp_path / "whole")), check=True,
                   capture_output=True)  # fmt: skip
    half = (time.monotonic() - started) / 2
    status, out, err, _ = _interrupted(
        _sigwh(path, "report", "--out", str(tmp_path / "out")), half, start_new_session=True
    )
    assert (status, out, err) == (STATUS, "", f"{MESSAGE}\n")


@pytest.mark.slow
def test_native_code_that_ignores_signals_is_ended_by_the_watcher(tmp_path) -> None:
    ready = tmp_path / "ready"
    code = WATCHED.format(n=30_000_000, ready=str(ready))  # minutes of hashing
    status, out, err, took = _interrupted(
        [sys.executable, "-c", code], 1, ready=ready, start_new_session=True
    )
    assert (status, out, err) == (STATUS, "", f"{MESSAGE}\n")
    assert took < 10  # the grace period (5 s), not the hashing


def test_a_process_that_ignores_sigint_goes_on(tmp_path) -> None:
    ready = tmp_path / "ready"
    code = WATCHED.format(n=1_500_000, ready=str(ready)) + "; print('done')"

    def ignore() -> None:  # what a shell does for `sigwh ... &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    status, out, err, _ = _interrupted(
        [sys.executable, "-c", code], 0.1, ready=ready, start_new_session=True, preexec_fn=ignore
    )
    assert (status, out, err) == (0, "done\n", "")
