"""Sustained concurrent use of one warehouse: ingest jobs, readers and reports at once.

    python bench/stress.py [--seconds 600] [--readers 4] [--per-label 2] [--work DIR]
                           [--json OUT]

For --seconds, in processes of their own:
  - two ingest jobs on different models (the spoof task's first two), each running
    `sigwh ingest --model M --seed S` for S = 0, 1, 2, ... (a new parameter set each
    time, so there is always work) until the time is up;
  - --readers readers, each looping `sigwh sql` over the views (transferability_summary,
    alpha and beta transferability, model_accuracy) and a consistency query: per cell,
    transfer_counts against a plain count of the signal_probs rows it sees;
  - `sigwh report --if-changed` in a loop.
Every command goes through the CLI's own code (typer's runner, in-process, so a loop
pays Python's start-up once). DuckDB lets one process write a file at a time, and a
command waits (with back-off, up to 60 s) while another holds it: that wait is the
documented cost of sharing a file, timed here; any other failure is counted as one.

Before each read, a reader times how long the file stays held by a writer (a wait: the
file could not be opened at the first try). Then the same jobs run again one after
another on a fresh copy, and every stored fact (run ids aside) must equal the concurrent
run's. Prints reads/s, the waits and the longest, reports built and failures; exits 1
on a failure, an inconsistent read or rows that differ.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import small_ingest
from typer.testing import CliRunner

from sigwarehouse.cli import app

VIEWS = [
    "SELECT * FROM transferability_summary",
    "SELECT * FROM alpha_transferability",
    "SELECT * FROM beta_transferability(0.5)",
    "SELECT * FROM model_accuracy",
]
# transfer_counts against a plain count of the rows the same read sees (one statement:
# one snapshot); a consistent file gives 0
CONSISTENCY = f"SELECT count(*) AS wrong FROM ({small_ingest.MISMATCHES})"


def wait_for_file(path: Path) -> float:
    """Seconds until the file can be opened for reading (another process may hold it:
    DuckDB lets no one read while a process writes), trying every 10 ms; 0 when the
    first try opens it."""
    started, first = time.monotonic(), True
    while True:
        try:
            duckdb.connect(str(path), read_only=True).close()
            return 0.0 if first else time.monotonic() - started
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            first = False
            time.sleep(0.01)


def _sigwh(path: Path, *args: str):
    return CliRunner().invoke(app, ["--warehouse", str(path), *args])


def _job_args(model: str, seed: int, per_label: int) -> list[str]:
    return ["ingest", "--model", model, "--seed", str(seed), "--per-label", str(per_label),
            "--clips-per-batch", "1", *small_ingest.LIGHT]  # fmt: skip


def run_jobs(path: Path, model: str, deadline: float, per_label: int) -> dict:
    done, failures = [], []
    seed = 0
    while time.time() < deadline:
        started = time.monotonic()
        result = _sigwh(path, *_job_args(model, seed, per_label))
        if result.exit_code != 0:
            failures.append(f"ingest {model} seed {seed}: {result.output.strip()[-300:]}")
        done.append({"model": model, "seed": seed, "seconds": time.monotonic() - started})
        seed += 1
    return {"jobs": done, "failures": failures}


def run_reader(path: Path, deadline: float, index: int) -> dict:
    """Loop `sigwh sql` over the views and the consistency query; before each read, time
    how long the file is held by a writer (the wait the read would have)."""
    reads, waits, failures, inconsistent, longest_wait, longest = 0, 0, [], 0, 0.0, 0.0
    queries = VIEWS + [CONSISTENCY]
    while time.time() < deadline:
        query = queries[(reads + index) % len(queries)]
        waited = wait_for_file(path)
        waits += waited > 0
        longest_wait = max(longest_wait, waited)
        started = time.monotonic()
        result = _sigwh(path, "sql", query, "--format", "json")
        longest = max(longest, time.monotonic() - started)
        reads += 1
        if result.exit_code != 0:
            failures.append(f"{query[:40]!r}: {result.output.strip()[-300:]}")
        elif query is CONSISTENCY and json.loads(result.output)[0]["wrong"] != 0:
            inconsistent += 1
    return {"reads": reads, "waits": waits, "longest_wait_s": longest_wait,
            "longest_s": longest, "failures": failures, "inconsistent": inconsistent}  # fmt: skip


def run_reporter(path: Path, deadline: float, out: Path) -> dict:
    builds, checks, failures, longest = 0, 0, [], 0.0
    while time.time() < deadline:
        started = time.monotonic()
        result = _sigwh(path, "report", "--out", str(out), "--if-changed")
        longest = max(longest, time.monotonic() - started)
        checks += 1
        if result.exit_code != 0:
            failures.append(result.output.strip()[-300:])
        elif "wrote " in result.output:
            builds += 1
    return {"checks": checks, "builds": builds, "longest_s": longest, "failures": failures}


def _role(opts: argparse.Namespace) -> None:
    """One worker process: run its loop and write what it saw to --result."""
    path, deadline = opts.warehouse, opts.deadline
    if opts.role == "jobs":
        found = run_jobs(path, opts.model, deadline, opts.per_label)
    elif opts.role == "reader":
        found = run_reader(path, deadline, opts.index)
    else:
        found = run_reporter(path, deadline, opts.out)
    opts.result.write_text(json.dumps(found))


def _facts(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return small_ingest.facts(con)
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--per-label", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    # a worker's own arguments (the script starts its workers with them)
    for name in ("--role", "--model", "--out", "--result", "--warehouse"):
        parser.add_argument(name, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.role:
        for name in ("out", "result", "warehouse"):
            setattr(opts, name, Path(getattr(opts, name)) if getattr(opts, name) else None)
        _role(opts)
        return

    work = opts.work or Path(tempfile.mkdtemp(prefix="sigwh-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    pristine, shared = work / "pristine.duckdb", work / "shared.duckdb"
    for stale in work.glob("*.duckdb*"):
        stale.unlink()
    models = small_ingest.build(pristine, models=2)
    shutil.copyfile(pristine, shared)

    started = time.time()
    deadline = started + opts.seconds
    roles = [("jobs", {"--model": m}) for m in models]
    roles += [("reader", {"--index": str(i)}) for i in range(opts.readers)]
    roles += [("reporter", {"--out": str(work / "report")})]
    workers = []
    for i, (role, extra) in enumerate(roles):
        result = work / f"worker-{i}.json"
        result.unlink(missing_ok=True)
        args = [sys.executable, __file__, "--role", role, "--warehouse", str(shared),
                "--deadline", str(deadline), "--result", str(result),
                "--per-label", str(opts.per_label)]  # fmt: skip
        args += [x for kv in extra.items() for x in kv]
        workers.append((role, result, subprocess.Popen(args, env=os.environ.copy())))
    codes = [p.wait() for _, _, p in workers]
    elapsed = time.time() - started
    found = {i: json.loads(r.read_text()) for i, (_, r, _) in enumerate(workers) if r.exists()}
    crashed = [roles[i][0] for i, code in enumerate(codes) if code != 0 or i not in found]

    readers = [found[i] for i, (role, _) in enumerate(roles) if role == "reader" and i in found]
    jobs = [j for i, (role, _) in enumerate(roles) if role == "jobs" and i in found
            for j in found[i]["jobs"]]  # fmt: skip
    reporter = next(found[i] for i, (role, _) in enumerate(roles) if role == "reporter")
    failures = [f for f in found.values() for f in f["failures"]]
    reads = sum(r["reads"] for r in readers)
    inconsistent = sum(r["inconsistent"] for r in readers)

    # the same jobs, one after another, on a fresh copy
    serial = work / "serial.duckdb"
    shutil.copyfile(pristine, serial)
    serial_started = time.monotonic()
    for job in sorted(jobs, key=lambda j: (j["seed"], j["model"])):
        result = _sigwh(serial, *_job_args(job["model"], job["seed"], opts.per_label))
        if result.exit_code != 0:
            failures.append(f"serial ingest {job}: {result.output.strip()[-300:]}")
    serial_s = time.monotonic() - serial_started
    differ = [t for t, rows in _facts(serial).items() if _facts(shared)[t] != rows]

    figures = {
        "seconds": elapsed, "readers": opts.readers, "reads": reads,
        "reads_per_s": reads / elapsed, "waits": sum(r["waits"] for r in readers),
        "longest_wait_s": max((r["longest_wait_s"] for r in readers), default=0.0),
        "longest_read_s": max((r["longest_s"] for r in readers), default=0.0),
        "reports_checked": reporter["checks"], "reports_built": reporter["builds"],
        "longest_report_s": reporter["longest_s"], "jobs": len(jobs),
        "jobs_by_model": {m: sum(j["model"] == m for j in jobs) for m in models},
        "inconsistent_reads": inconsistent, "failures": failures, "crashed": crashed,
        "tables_differing_from_serial": differ, "serial_seconds": serial_s,
    }  # fmt: skip
    print(f"{elapsed:.0f} s: {len(jobs)} ingest jobs {figures['jobs_by_model']}, "
          f"{opts.readers} readers, a report loop")  # fmt: skip
    print(
        f"reads: {reads} ({figures['reads_per_s']:.2f}/s); waits for a writer: "
        f"{figures['waits']}, longest {figures['longest_wait_s']:.1f} s; longest read "
        f"(its wait included) {figures['longest_read_s']:.1f} s"
    )
    print(f"reports: {reporter['checks']} checks, {reporter['builds']} built, longest "
          f"{reporter['longest_s']:.1f} s")  # fmt: skip
    print(f"inconsistent reads: {inconsistent}; failures: {len(failures)}; crashed: {crashed}")
    for failure in failures[:10]:
        print(f"  {failure}")
    print(f"serial rerun of the jobs: {serial_s:.0f} s; tables differing: {differ or 'none'}")
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=1))
    if opts.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if failures or crashed or inconsistent or differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
