"""The query layer at scale: the transferability views on 10 million signal evaluations.

    python bench/bench_views.py [--rows 10000000] [--work DIR]

Generates (inside DuckDB, seeded) a warehouse shaped like a big study: 3 tasks, 8 models
each, enough clips that every model's sufficient, complete and inverse signals on every
model of its task add up to --rows rows of `signal_probs`. Then times, each as the best
of 3 runs after one warm-up, fully materialised:
  - SELECT * FROM alpha_transferability
  - SELECT * FROM beta_transferability(0.5)
  - SELECT * FROM transferability_summary
  - SELECT * FROM flat_earthers
Target: under 1 s each on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from sigwarehouse import warehouse

TASKS = {"emotion": 5, "genre": 5, "spoof": 2}
MODELS_PER_TASK = 8
KINDS = 3  # sufficient, complete, inverse


def generate(path: Path, rows: int) -> None:
    warehouse.init(path)
    con = duckdb.connect(str(path))
    per_clip = MODELS_PER_TASK * KINDS * MODELS_PER_TASK  # rows per clip in a task
    clips_per_task = rows // (per_clip * len(TASKS))
    con.execute("SELECT setseed(0.42)")
    clip_base = 0
    for task, n_labels in TASKS.items():
        labels = [f"{task}{k}" for k in range(n_labels)]
        con.execute("INSERT INTO tasks VALUES (?, ?, 16000, 0.5, NULL)", [task, labels])
        con.execute(
            "INSERT INTO datasets VALUES (?, ?, '/data', 'folder', NULL, NULL)", [f"{task}-d", task]
        )
        for m in range(MODELS_PER_TASK):
            con.execute(
                "INSERT INTO models (model, task, kind, ref, labels) VALUES (?, ?, 'zoo', 'x', ?)",
                [f"{task[0]}m{m}", task, labels],
            )
        con.execute(
            """
            INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s,
                               native_sample_rate, native_channels, n_samples)
            SELECT ? + i, ?, 'c' || i, 'h', ?[1 + (i % ?)], 3.0, 16000, 1, 48000
            FROM range(?) r(i)
            """,
            [clip_base, f"{task}-d", labels, n_labels, clips_per_task],
        )
        # every (source, clip, kind, target): a random distribution peaked on one class
        con.execute(
            f"""
            INSERT INTO signal_probs
            WITH grid AS (
                SELECT ? + c AS clip_id, s, k, tm,
                       (hash(c, s) % ?)::SMALLINT AS source_class,
                       random() AS u
                FROM range(?) a(c), range({MODELS_PER_TASK}) b(s), range({KINDS}) d(k),
                     range({MODELS_PER_TASK}) e(tm)
            )
            SELECT ?[1] || 'm' || s, clip_id, 'h', ['sufficient', 'complete', 'inverse'][k + 1],
                   ?[1] || 'm' || tm, source_class,
                   list_transform(range(?), lambda j: (CASE WHEN j = source_class THEN u ELSE
                       (1 - u) / (? - 1) END)::FLOAT),
                   (CASE WHEN u > 0.4 THEN source_class ELSE (source_class + 1) % ? END),
                   (-u * log2(greatest(u, 1e-9)) - (1 - u) * log2(greatest((1 - u) / (? - 1),
                       1e-9)))::FLOAT,
                   '00000000-0000-0000-0000-000000000000'
            FROM grid
            """,
            [
                clip_base,
                n_labels,
                clips_per_task,
                task,
                task,
                n_labels,
                n_labels,
                n_labels,
                n_labels,
            ],
        )
        clip_base += clips_per_task
    con.execute("CHECKPOINT")
    con.close()


QUERIES = {
    "alpha_transferability": "SELECT * FROM alpha_transferability",
    "beta_transferability(0.5)": "SELECT * FROM beta_transferability(0.5)",
    "transferability_summary": "SELECT * FROM transferability_summary",
    "flat_earthers": "SELECT * FROM flat_earthers",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-views-"))
    path = work / "big.duckdb"
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.rows)
        print(f"generated in {time.perf_counter() - start:.1f} s: {path}")
    con = duckdb.connect(str(path), read_only=True)
    n = con.execute("SELECT count(*) FROM signal_probs").fetchone()[0]
    print(f"signal_probs rows: {n:,}; file {path.stat().st_size / 1e6:.0f} MB; threads 2")
    con.execute("SET threads = 2")
    for name, sql in QUERIES.items():
        con.execute(sql).fetchall()  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = con.execute(sql).fetchall()
            times.append(time.perf_counter() - start)
        print(f"{name:<28} {min(times):6.3f} s  ({len(result)} rows)")
    con.close()


if __name__ == "__main__":
    main()
