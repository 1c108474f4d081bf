"""bench/stress.py, short: two ingest jobs on different models, four readers looping
`sigwh sql` over the views and a consistency query, and `sigwh report --if-changed`, at
once on one file; no failure but the documented waits for the file, every read
consistent, and the final rows those of the same jobs run one after another.

The CI run lasts SIGWH_STRESS_S seconds (default 60, plus the serial rerun); the closing
figures come from `python bench/stress.py --seconds 600`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("stress")

REPO = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("SIGWH_STRESS_S", "60"))


def test_concurrent_jobs_readers_and_reports_fail_nothing_and_agree_with_serial_runs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(REPO / "bench" / "stress.py"), "--seconds", str(SECONDS),
           "--per-label", "1", "--work", str(tmp_path / "w"), "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    figures = json.loads(out.read_text())
    assert figures["failures"] == [] and figures["crashed"] == []
    assert figures["inconsistent_reads"] == 0
    assert figures["tables_differing_from_serial"] == []
    assert figures["reads"] >= 4 and figures["reports_checked"] >= 1
    assert all(n >= 1 for n in figures["jobs_by_model"].values())
    assert len(figures["jobs_by_model"]) == 2
    for line in ("reads:", "waits for a writer:", "serial rerun of the jobs"):
        assert line in done.stdout, done.stdout


HOLD = """
import sys, time
from pathlib import Path
from sigwarehouse import store
path, read_only, hold = Path(sys.argv[1]), sys.argv[2] == "read", float(sys.argv[3])
con = store.connect(path, read_only=read_only, package_views=False)
print(time.time(), flush=True)  # when it got the file
time.sleep(hold)
con.close()
"""


def test_a_waiting_writer_goes_before_readers_that_come_after_it(wh_path: Path) -> None:
    """A reader holds the file; a writer comes and waits; a second reader comes after the
    writer. The writer opens the file before the second reader (its turn: store/
    connection.py _turn), where without turns readers that overlap would keep it out."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start(kind: str, hold: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", HOLD, str(wh_path), kind, str(hold)],
                                stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip

    first_reader = start("read", 2.0)
    first_reader.stdout.readline()  # it holds the file now
    writer = start("write", 0.5)
    time.sleep(0.5)  # the writer is waiting for the file
    second_reader = start("read", 0)
    opened = {name: float(p.stdout.readline()) for name, p in
              (("writer", writer), ("second reader", second_reader))}  # fmt: skip
    for p in (first_reader, writer, second_reader):
        assert p.wait(timeout=60) == 0
    assert opened["writer"] < opened["second reader"], opened
