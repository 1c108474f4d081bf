"""Mutation testing of the SQL views: each listed defect is applied, one at a time, to a
copy of the code and its sql/ folder, and the view tests run against that copy. A mutant
is killed when some test fails. Prints one line per mutant and the score.

    .venv/bin/python tests/mutation/sql_mutations.py [-k SUBSTRING]

mutmut mutates Python only; these are the defects a view is most likely to have (a
flipped comparison, a boundary moved, a condition dropped, a wrong logarithm, a join that
loses rows), written by hand. The repository itself is never modified.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = [
    "tests/test_views.py",
    "tests/test_transfer_counts.py",
    "tests/test_sql.py",
    "tests/test_parameter_sets.py",
    "tests/test_analyses.py",
]

# the count the α and β views read (a Python file holding SQL)
COUNTS = "src/sigwarehouse/transfer_counts.py"

# (view file under sql/views, or a path; text to replace, replacement, what the defect is)
MUTATIONS = [
    ("alpha_transferability_for", "coalesce(sum(n) FILTER (WHERE same_class), 0)",
     "coalesce(sum(n) FILTER (WHERE NOT same_class), 0)",
     "alpha counts the signals that change class"),
    ("alpha_transferability_for", "FILTER (WHERE mask = 'empty')", "FILTER (WHERE mask <> 'kept')",
     "n_empty counts signals without a mask as empty"),
    ("alpha_transferability_for", "FILTER (WHERE same_class AND mask = 'kept')",
     "FILTER (WHERE same_class)", "alpha_nonempty counts empty masks that keep the class"),
    ("alpha_transferability_for", "/ nullif(sum(n) FILTER (WHERE mask = 'kept'), 0)",
     "/ nullif(sum(n), 0)", "alpha_nonempty shares over every signal"),
    ("model_sets_for", "coalesce(p.params_hash = hash, p.shown)",
     "coalesce(p.params_hash = hash, true)", "every parameter set mixed into the shown one"),
    ("alpha_transferability_for", "::DOUBLE / sum(n) AS alpha", "::DOUBLE AS alpha",
     "alpha a count, not a share"),
    ("alpha_transferability_for", "AND w.params_hash = x.params_hash", "",
     "cells joined to every parameter set of the task"),
    (COUNTS, "WHERE s.kind IN ('sufficient', 'complete')",
     "WHERE s.kind IN ('sufficient', 'complete', 'inverse')", "inverse signals counted"),
    (COUNTS, "WHEN mask_size = 0 THEN 'empty'", "WHEN mask_size <= 1 THEN 'empty'",
     "one-bin masks counted as empty"),
    (COUNTS, "bits <= (k0 / {LEVELS} * most)::FLOAT THEN k0",
     "bits < (k0 / {LEVELS} * most)::FLOAT THEN k0",
     "counts: an entropy exactly on a bound is not within it"),
    (COUNTS, "least(s.entropy_bits, log2(len(t.labels))::FLOAT) AS bits", "s.entropy_bits AS bits",
     "counts: no clamp, a rounding above log2(n) is never within the bound"),
    (COUNTS, "log2(len(t.labels)) AS most", "ln(len(t.labels)) AS most",
     "counts: the bound in nats, not bits"),
    (COUNTS, "s.top1 = s.source_class AS same_class", "s.top1 >= s.source_class AS same_class",
     "counts: same class read as a comparison of indices"),
    ("beta_transferability_for",
     "WHERE same_class AND eps_level <= round(eps * 100)), 0)::DOUBLE\n",
     "WHERE same_class OR eps_level <= round(eps * 100)), 0)::DOUBLE\n",
     "beta (counts) accepts a confident other class"),
    ("beta_transferability_for", "FILTER (WHERE eps_level <= round(eps * 100))",
     "FILTER (WHERE eps_level < round(eps * 100))", "beta_entropy_only (counts) misses the bound"),
    ("beta_transferability_for", "WHERE round(eps * 100) / 100 = eps::DOUBLE",
     "WHERE true", "beta reads the counts off the grid too"),
    ("beta_transferability_for", "WHERE round(eps * 100) / 100 <> eps::DOUBLE",
     "WHERE false", "beta off the grid gives nothing"),
    ("beta_transferability_scan", "least(s.entropy_bits, b.most) <= b.bound",
     "least(s.entropy_bits, b.most) < b.bound", "an entropy exactly on the bound is not confident"),
    ("beta_transferability_scan", "(eps * log2(len(t.labels)))::FLOAT AS bound",
     "(eps * ln(len(t.labels)))::FLOAT AS bound", "the bound in nats, not bits"),
    ("beta_transferability_scan", "least(s.entropy_bits, b.most)",
     "s.entropy_bits", "no clamp: a rounding above log2(n) is not confident at eps = 1"),
    ("beta_transferability_scan",
     "avg(CASE WHEN same_class AND confident THEN 1.0 ELSE 0.0 END) AS beta,",
     "avg(CASE WHEN same_class OR confident THEN 1.0 ELSE 0.0 END) AS beta,",
     "beta accepts a confident other class"),
    ("beta_transferability_scan", "s.top1 = s.source_class AS same_class",
     "s.top1 >= s.source_class AS same_class", "same class read as a comparison of indices"),
    ("flat_earthers_for", "gap_out < -margin AND gap_in < -margin",
     "gap_out < -margin OR gap_in < -margin", "a flat-earther needs only one low direction"),
    ("flat_earthers_for", "gap_out < -margin AND gap_in < -margin",
     "gap_out <= -margin AND gap_in <= -margin", "a gap exactly at the margin counts"),
    ("flat_earthers_for", "/ nullif(count(*) OVER g - 1, 0) AS peers_out",
     "/ nullif(count(*) OVER g, 0) AS peers_out", "peers' mean divides by all models"),
    ("flat_earthers_for", "(sum(avg_in) OVER g - avg_in)", "(sum(avg_in) OVER g)",
     "a model is its own peer"),
    ("transferability_summary_for", "WHERE source_model <> target_model", "WHERE true",
     "the diagonal (a model on its own signals) enters the averages"),
    ("transferability_summary_for", "FULL JOIN incoming", "JOIN incoming",
     "a model with no incoming signals disappears"),
    ("transferability_summary_for", "max(n_empty) AS n_empty", "sum(n_empty) AS n_empty",
     "n_empty summed over targets"),
    ("model_accuracy", "t.labels[o.top1 + 1] = c.label", "t.labels[o.top1] = c.label",
     "labels read 0-based in a 1-based list"),
    ("label_transfer", "WHERE l.orig_top1 <> l.signature_class", "WHERE true",
     "clips already of the signature class counted"),
    ("label_transfer", "count(*) FILTER (l.top1 = l.signature_class)",
     "count(*) FILTER (l.top1 <> l.signature_class)", "flips counted backwards"),
    ("parameter_sets", "s.n_explanations DESC,", "s.n_explanations ASC,",
     "the smallest parameter set is shown"),
    ("parameter_sets", "IS NOT DISTINCT FROM c.params_hash DESC,",
     "IS NOT DISTINCT FROM c.params_hash ASC,", "the current set is not preferred"),
    ("parameter_sets", ") = 1 AS shown", ") <= 2 AS shown", "two parameter sets shown at once"),
    ("compositionality", "k.n_composed / nullif(k.n_candidates, 0)",
     "k.n_composed / nullif(k.n_candidates + k.n_empty, 0)", "degree over the wrong count"),
]  # fmt: skip


def copy_tree(dst: Path) -> None:
    """A copy of the code, sql and test files the view tests need."""
    for name in ("src", "sql", "tests", "ingest", "data", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst / name)


def run_tests(tree: Path) -> tuple[bool, float]:
    """(all passed, seconds) for the view tests against the copy at `tree`."""
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree}")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
        cwd=tree, env=env, capture_output=True, text=True,
    )  # fmt: skip
    return done.returncode == 0, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run only mutants whose view or note has this")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.k in m[0] or args.k in m[3]]
    with tempfile.TemporaryDirectory(prefix="sigwh-sqlmut-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        ok, seconds = run_tests(tree)
        if not ok:
            print("the view tests fail on the unmutated code: fix that first")
            return 2
        print(f"unmutated: the view tests pass ({seconds:.0f} s)")
        survived = []
        for view, old, new, note in chosen:
            file = tree / view if "/" in view else tree / "sql" / "views" / f"{view}.sql"
            original = file.read_text()
            if original.count(old) != 1:
                print(f"ERROR {view}: the text to mutate occurs {original.count(old)} times")
                return 2
            file.write_text(original.replace(old, new))
            try:
                passed, seconds = run_tests(tree)
            finally:
                file.write_text(original)
            print(f"{'SURVIVED' if passed else 'killed  '} {view}: {note} ({seconds:.0f} s)")
            if passed:
                survived.append((view, note))
    killed = len(chosen) - len(survived)
    print(f"SQL views: {killed} of {len(chosen)} mutants killed ({killed / len(chosen):.0%})")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
