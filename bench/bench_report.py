"""`sigwh report` at study scale: each section's seconds and the report's peak memory.

    python bench/bench_report.py [--rows 10000000] [--work DIR]
    python bench/bench_report.py --rows 100000000 --work /big/disk

Builds the warehouse `bench_views.py` generates for --rows rows of `signal_probs` (3 tasks,
8 models each; kept in --work/rows-N/big.duckdb and reused by later runs), then, each in a
process of its own so that its peak resident memory is the report's alone (seconds and
CPU seconds, all threads: on a busy machine the CPU seconds say more):
  1. the report into --work/rows-N/report, timed section by section (the analyses of
     `sigwh report`, each wrapped in a timer; what is left of the total is rendering:
     CSV files, charts drawn by vl-convert, the page), and the process's peak memory;
  2. `sigwh report --if-changed` into the same folder: the warehouse is unchanged, so it
     only decides that; its seconds include starting Python, as a scheduled job's do.
Targets: at 10^7 rows <= 15 s and <= 1 GB, at 10^8 rows <= 90 s and <= 2 GB, on 2 cores;
--if-changed <= 2 s at 10^8.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import bench_views

WORK = Path("/tmp/sigwh-bench-report")


def warehouse(rows: int, work: Path) -> Path:
    """The bench warehouse of `rows` rows, generated on the first run and reused after
    (10^8 rows: about 2.3 GB, minutes to generate)."""
    path = work / f"rows-{rows}" / "big.duckdb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        bench_views.generate(path, rows, batch_clips=2048, memory_limit="4GB")
        print(f"generated {path} in {time.perf_counter() - start:.1f} s")
    return path


def timed(module: types.ModuleType, seconds: dict[str, list[float]]) -> types.ModuleType:
    """A module-like stand-in for an analysis whose run() records its seconds and CPU
    seconds. It keeps the analysis's file, so the report's fingerprint (and --if-changed)
    is the same as sigwh's."""
    stand_in = types.ModuleType(module.__name__)
    stand_in.__file__ = module.__file__

    def run(con):
        start, cpu = time.perf_counter(), time.process_time()
        section = module.run(con)
        seconds[section.key] = [time.perf_counter() - start, time.process_time() - cpu]
        return section

    stand_in.run = run
    return stand_in


def child(path: Path, out: Path) -> None:
    """Build the report with every analysis timed; print one JSON line of figures."""
    from sigwarehouse import analyses, report  # imports are part of what a run costs

    seconds: dict[str, list[float]] = {}
    start, cpu, error = time.perf_counter(), time.process_time(), None
    try:
        report.build_report(path, out, [timed(m, seconds) for m in analyses.REPORT])
    except Exception as exc:  # the figures up to the failure, and what it was
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    total = [time.perf_counter() - start, time.process_time() - cpu]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"sections": seconds, "total": total, "peak": peak, "error": error}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--work", type=Path, default=WORK, help=f"default {WORK}")
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    path = warehouse(args.rows, args.work)
    out = path.parent / "report"
    print(f"warehouse {path} ({path.stat().st_size / 1e6:.0f} MB), {args.rows:,} signal rows")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(out)],
        check=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    (total, total_cpu), sections = figures["total"], figures["sections"]
    if figures["error"]:
        print(f"the report FAILED after {total:.1f} s: {figures['error']}")
    print(f"  {'section':<24} {'seconds':>8} {'CPU s':>8}")
    for key, (s, cpu) in sections.items():
        print(f"  {key:<24} {s:8.2f} {cpu:8.2f}")
    render = [total - sum(s for s, _ in sections.values()),
              total_cpu - sum(c for _, c in sections.values())]  # fmt: skip
    print(f"  {'(rendering, files)':<24} {render[0]:8.2f} {render[1]:8.2f}")
    print(
        f"report: {total:.1f} s in build_report ({total_cpu:.1f} CPU s), {wall:.1f} s with "
        f"Python's start; peak resident memory {figures['peak'] / 1e9:.2f} GB; load average "
        f"{os.getloadavg()[0]:.1f} (2 cores: above 2, other processes slow it down)"
    )
    if figures["error"]:
        return
    start = time.perf_counter()
    again = subprocess.run(
        [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), "report", "--out",
         str(out), "--if-changed"], check=True, capture_output=True, text=True,
    )  # fmt: skip
    decided = time.perf_counter() - start
    print(f"sigwh report --if-changed: {decided:.2f} s ({again.stdout.strip()})")


if __name__ == "__main__":
    main()
