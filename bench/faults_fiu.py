"""I/O errors at random points: seeded trials of a small `sigwh ingest` under libfiu.

    python bench/faults_fiu.py [--trials 50] [--probability 0.05] [--seed 0] [--per-label 1]
                               [--work DIR] [--json OUT]

Needs Debian's libfiu (`apt-get install fiu-utils libfiu0`). The script builds the
warehouse and the uninterrupted reference run, then runs itself again with libfiu's
preload libraries (what `fiu-run -x` preloads, and the libraries with thread-local
storage it has loaded: see _under_fiu_run), so every write, pwrite, writev, fsync,
fdatasync and ftruncate of the process (DuckDB's included) can be made to fail. The
failure points are switched on only around the command under test, through libfiu's C
API (ctypes): the model is loaded and the checks run without them.

Each trial copies one freshly built warehouse (the spoof clips, its first zoo model),
seeds libfiu's generator with the trial's seed, fails each such call with the given
probability while `sigwh ingest --per-label N --clips-per-batch 1 --hold-s 0`
(the first N clips of each label, so a rerun has the same clips to do) runs (one
transaction, and one open and close of the file, per clip), then with the failure points
off checks, in plain SQL:

  - the command completed (exit 0) or ended with one `error:` line (exit 1), never a
    traceback;
  - the file opens; `sigwh info` exits 0 and does not warn about transfer_counts, and a
    plain tally of transfer_counts equals a count of signal_probs;
  - nothing half-written: every stored explanation has its original probabilities and
    its signals, each equal to the uninterrupted run's, and the run's clips_done equals
    the explanations it stored (the counters are written with each batch);
  - a clean rerun of the same command exits 0 and leaves every fact (run ids aside)
    equal to the uninterrupted run's.

Prints each trial's outcome and a tally of where the failures arose.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import small_ingest
from typer.testing import CliRunner

from sigwarehouse.cli import app

POINTS = [
    "posix/io/rw/write", "posix/io/rw/pwrite", "posix/io/rw/writev", "posix/io/rw/pwritev",
    "posix/io/sync/fsync", "posix/io/sync/fdatasync", "posix/io/rw/ftruncate",
]  # fmt: skip
PRELOAD = "fiu_posix_preload.so"
FIU_LIBS = "/usr/lib/fiu"  # where Debian's libfiu0 puts its preload libraries
PT_TLS = 7  # an ELF program header of thread-local storage


def _has_tls(path: str) -> bool:
    """Whether the ELF shared library at `path` has a thread-local storage segment."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            (phoff,) = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == PT_TLS for i in range(phnum))


def _loaded_tls_libraries() -> list[str]:
    """The shared libraries this process has loaded that hold thread-local storage."""
    paths = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and ".so" in parts[5] and parts[5].startswith("/"):
            paths.add(parts[5].strip())
    return sorted(p for p in paths if "/fiu/" not in p and "libc.so" not in p and _has_tls(p))


def _under_fiu_run(work: Path) -> None:
    """Run this script again with libfiu's POSIX wrappers preloaded (what `fiu-run -x`
    does), with the prepared folder `work`.

    libfiu's malloc wrappers use thread-local storage, and a library with such storage
    loaded later (pyarrow's, scipy's) makes glibc grow its table of them inside those
    wrappers, which aborts ("double free"). So every such library this process has
    loaded (the uninterrupted run loaded all the trials need) is preloaded too."""
    fiu_run = shutil.which("fiu-run")
    if fiu_run is None or not Path(FIU_LIBS, PRELOAD).exists():
        sys.exit("fiu-run not found: install Debian's fiu-utils and libfiu0 (apt-get install)")
    preload = [f"{FIU_LIBS}/fiu_run_preload.so", f"{FIU_LIBS}/{PRELOAD}"]
    env = {**os.environ, "LD_PRELOAD": " ".join(preload + _loaded_tls_libraries())}
    argv = [a for a in sys.argv if a != "--prepared"]
    os.execve(sys.executable, [sys.executable, *argv, "--prepared", "--work", str(work)], env)


class Faults:
    """libfiu's failure points, switched on and off from this process."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libfiu.so.0")  # the copy the preloaded wrappers use
        self.lib.fiu_enable_random.argtypes = [
            ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_float,
        ]  # fmt: skip
        self.lib.fiu_set_prng_seed.argtypes = [ctypes.c_uint]

    def on(self, seed: int, probability: float) -> None:
        self.lib.fiu_set_prng_seed(seed)
        for name in POINTS:
            if self.lib.fiu_enable_random(name.encode(), 1, None, probability) != 0:
                raise RuntimeError(f"libfiu refused to enable {name}")

    def off(self) -> None:
        for name in POINTS:
            self.lib.fiu_disable(name.encode())


def _sigwh(path: Path, *args: str):
    return CliRunner().invoke(app, ["--warehouse", str(path), *args])


def _half_written(con: duckdb.DuckDBPyConnection, reference: dict) -> list[str]:
    """What is stored but differs from the uninterrupted run, or is stored without the
    rows its batch wrote with it."""
    facts = small_ingest.facts(con)
    problems = []
    for table in ("explanations", "original_probs", "signal_probs", "model_probes"):
        extra = set(facts[table]) - set(reference[table])
        if extra:
            problems.append(f"{table}: {len(extra)} row(s) not in the uninterrupted run")
    explained = {(r[0], r[1]) for r in facts["explanations"]}
    if explained != {(r[0], r[1]) for r in facts["original_probs"]}:
        problems.append("explanations without their original_probs (or the reverse)")
    expected = {r for r in reference["signal_probs"] if (r[0], r[1]) in explained}
    if set(facts["signal_probs"]) != expected:
        problems.append("signal_probs do not match the stored explanations")
    counted = con.execute(
        "SELECT r.run_id, r.clips_done, count(e.clip_id) FROM runs r"
        " LEFT JOIN explanations e USING (run_id) GROUP BY ALL"
        " HAVING r.clips_done <> count(e.clip_id)"
    ).fetchall()
    if counted:
        problems.append(f"runs.clips_done differs from the explanations stored: {counted}")
    return problems


def trial(
    base: Path, work: Path, args: list[str], reference: dict, faults: Faults, seed: int, p: float
) -> dict:
    path = work / f"trial-{seed}.duckdb"
    shutil.copyfile(base, path)
    faults.on(seed, p)
    try:
        result = _sigwh(path, *args)
    finally:
        faults.off()
    lines = [line for line in result.output.splitlines() if line.strip()]
    error = next((line for line in lines if line.startswith("error:")), None)
    clean_exit = result.exit_code == 0 and error is None
    clean_error = result.exit_code == 1 and error is not None and "Traceback" not in result.output
    outcome = {
        "seed": seed,
        "exit": result.exit_code,
        "outcome": "completed" if clean_exit else "failed" if clean_error else "unclear",
        "error": error,
        "problems": [],
    }
    if outcome["outcome"] == "unclear":
        outcome["problems"].append(f"neither completed nor one error line: {lines[-3:]}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            outcome["problems"].append(repr(result.exception)[:300])
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        outcome["problems"].append(f"the file does not open: {exc}")
        return outcome
    try:
        outcome["stored"] = con.execute("SELECT count(*) FROM explanations").fetchall()[0][0]
        outcome["problems"] += _half_written(con, reference)
        if small_ingest.tally_mismatches(con):
            outcome["problems"].append("transfer_counts differ from a tally of signal_probs")
    finally:
        con.close()
    info = _sigwh(path, "info")
    if info.exit_code != 0 or "warning" in info.output:
        outcome["problems"].append(f"sigwh info: {info.output.strip().splitlines()[-1:]}")
    rerun = _sigwh(path, *args)
    if rerun.exit_code != 0:
        outcome["problems"].append(f"clean rerun failed: {rerun.output.strip()[-300:]}")
    con = duckdb.connect(str(path), read_only=True)
    try:
        after = small_ingest.facts(con)
        differ = [table for table, rows in reference.items() if after[table] != rows]
        if differ:
            outcome["problems"].append(f"after the rerun, rows of {differ} differ from the"
                                       " uninterrupted run's")  # fmt: skip
    finally:
        con.close()
    if not outcome["problems"]:  # a file with a problem stays, to be looked into
        for leftover in work.glob(f"trial-{seed}.duckdb*"):
            leftover.unlink()
    return outcome


def where(error: str | None) -> str:
    """What a failed trial's error says went wrong, and in which file."""
    if error is None:
        return "-"
    what = "no room" if "The disk is full" in error else "failed call"
    if "sigwh-reference" in error:
        file = "the checks' temporary file"
    elif ".wal" in error:
        file = "the write-ahead log"
    elif ": a write failed:" in error:
        file = "unnamed (DuckDB's fatal fsync)"
    else:
        file = "the warehouse file"
    return f"{what}: {file}"


def _args(model: str, per_label: int) -> list[str]:
    """The command every trial runs: one transaction, one open and close, per clip."""
    return ["ingest", "--model", model, "--per-label", str(per_label), "--clips-per-batch", "1",
            "--hold-s", "0", *small_ingest.LIGHT]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--probability", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="the first trial's seed")
    parser.add_argument(
        "--per-label", type=int, default=1, help="clips of each label a trial explains"
    )
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--prepared", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="sigwh-fiu-"))
    base, uninterrupted = work / "base.duckdb", work / "uninterrupted.duckdb"
    if not opts.prepared:
        # Built before libfiu is preloaded: the catalog imports every model's library,
        # and one of them (earshot) aborts under libfiu's wrappers at import.
        work.mkdir(parents=True, exist_ok=True)
        for path in (base, uninterrupted):
            path.unlink(missing_ok=True)
        (model,) = small_ingest.build(base, models=1)
        shutil.copyfile(base, uninterrupted)
        done = _sigwh(uninterrupted, *_args(model, opts.per_label))
        if done.exit_code != 0:
            sys.exit(f"the uninterrupted run failed: {done.output[-500:]}")
        _under_fiu_run(work)
    faults = Faults()
    con = duckdb.connect(str(uninterrupted), read_only=True)
    reference = small_ingest.facts(con)
    (model,) = {row[0] for row in reference["explanations"]}
    con.close()
    args = _args(model, opts.per_label)
    started = time.monotonic()
    outcomes = []
    for seed in range(opts.seed, opts.seed + opts.trials):
        outcome = trial(base, work, args, reference, faults, seed, opts.probability)
        outcomes.append(outcome)
        print(
            f"trial {seed:4d}: {outcome['outcome']:<9} stored {outcome.get('stored', '?')}"
            f"  {outcome['error'] or ''}"[:200]
            + ("" if not outcome["problems"] else f"  PROBLEMS: {outcome['problems']}"),
            flush=True,
        )
    seconds = time.monotonic() - started
    tally = collections.Counter(o["outcome"] for o in outcomes)
    places = collections.Counter(where(o["error"]) for o in outcomes if o["outcome"] == "failed")
    with_problems = [o["seed"] for o in outcomes if o["problems"]]
    print(f"trials: {len(outcomes)} in {seconds:.0f} s (p = {opts.probability} per call)")
    print(f"outcomes: {dict(tally)}")
    print(f"failures by place: {dict(places)}")
    print(f"trials with a problem: {with_problems or 'none'}")
    figures = {
        "trials": len(outcomes), "seconds": seconds, "probability": opts.probability,
        "outcomes": dict(tally), "places": dict(places), "with_problems": with_problems,
        "each": outcomes,
    }  # fmt: skip
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=1))
    if opts.keep is False:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
