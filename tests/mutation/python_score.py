"""The mutation score of the last `mutmut run`, per part of the core.

    .venv/bin/python tests/mutation/python_score.py [--survivors]

Reads mutmut's results under mutants/, leaves out the mutants listed in
tests/mutation/equivalent.toml (each with its reason), and prints, per part, how many
mutants the tests killed (a failing test, a timeout or a crash) out of those that are
not equivalent. `--survivors` also lists every surviving mutant not marked equivalent;
`mutmut show NAME` prints its diff.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[2]
PARTS = {  # part of the core -> module prefixes of its mutants
    "search engine (freqrex)": ("sigwarehouse.freqrex.",),
    "write path (store/write_path.py, models/counting.py)": (
        "sigwarehouse.store.write_path.",
        "sigwarehouse.models.counting.",
    ),
    "clip policy (audio.py)": ("sigwarehouse.audio.",),
    "metrics (scoring, spectral entropy, ASR fidelity)": (
        "sigwarehouse.models.scoring.",
        "sigwarehouse.analyses.spectral_entropy.",
        "sigwarehouse.analyses.asr_fidelity.",
    ),
}
DETECTED = {"killed", "timeout", "segfault", "killed by a signal", "caught by type check"}


def results(where: Path) -> dict[str, str]:
    """Mutant name -> status, from every .meta file mutmut wrote under `where`.

    A test process that a signal ended (a negative exit code mutmut has no name for,
    e.g. -1: a mutant that sends SIGHUP where it meant signal 0, to the tests' own
    process) failed its tests: the mutant is detected, not "suspicious"."""
    out = {}
    for meta in where.rglob("*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = _status(code)
    return out


def _status(code: int | None) -> str:
    if code is not None and code < 0 and code not in status_by_exit_code:
        return "killed by a signal"
    return status_by_exit_code[code]


def equivalents() -> dict[str, str]:
    path = Path(__file__).with_name("equivalent.toml")
    listed = tomllib.loads(path.read_text())["equivalent"] if path.exists() else []
    return {e["mutant"]: e["reason"] for e in listed}


def part_of(name: str, by_module: bool = False) -> str:
    if by_module:  # sigwarehouse.freqrex.search.x_grow__mutmut_3 -> sigwarehouse.freqrex.search
        return ".".join(p for p in name.split(".") if not p.startswith("x"))
    for part, prefixes in PARTS.items():
        if name.startswith(prefixes):
            return part
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument("--by-module", action="store_true", help="one line per module")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "mutants", help="mutmut's folder, or a copy"
    )
    args = parser.parse_args()
    status = results(args.results)
    if not status:
        print("no mutmut results under mutants/: run `mutmut run` first")
        return 2
    equivalent = equivalents()
    stale = sorted(set(equivalent) - set(status))
    counts: dict[str, Counter] = {}
    survivors = []
    for name, st in sorted(status.items()):
        c = counts.setdefault(part_of(name, args.by_module), Counter())
        if name in equivalent:
            c["equivalent"] += 1
        elif st in DETECTED:
            c["killed"] += 1
        elif st == "not checked":
            c["not checked"] += 1
        else:  # survived, no tests, suspicious, skipped
            c["undetected"] += 1
            survivors.append(f"{st:10} {name}")
    print(f"{'part':52} {'mutants':>7} {'killed':>7} {'undetected':>10} {'equivalent':>10}"
          f" {'not run':>7} {'score':>6}")  # fmt: skip
    for part, c in counts.items():
        judged = c["killed"] + c["undetected"]
        score = f"{c['killed'] / judged:.0%}" if judged else "-"
        print(f"{part:52} {c.total():7} {c['killed']:7} {c['undetected']:10} "
              f"{c['equivalent']:10} {c['not checked']:7} {score:>6}")  # fmt: skip
    if stale:
        print(f"equivalent.toml names {len(stale)} mutants mutmut no longer makes: {stale[:3]}")
    if args.survivors:
        print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
