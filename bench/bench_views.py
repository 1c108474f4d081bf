"""The query layer at scale: the transferability views on 10^7-10^8 signal evaluations.

    python bench/bench_views.py [--rows 10000000] [--work DIR]
    python bench/bench_views.py --rows 100000000 --work /big/disk

Generates (inside DuckDB, seeded) a warehouse shaped like a big study: 3 tasks, 8 models
each, enough clips that every model's sufficient, complete and inverse signals on every
model of its task add up to --rows rows of `signal_probs`. The rows are written as
ingestion writes them: in batches of clips (--batch-clips), sorted by key within a batch,
with probabilities that look like real ones (every row distinct: a random distribution
over the task's classes, its top-1 and entropy computed from it), so that the file's
size is honest about compression. Generation streams batch by batch, under DuckDB's
--memory-limit. Prints bytes per row of the file. Then times, each as the best of 3
runs after one warm-up, fully materialised:
  - SELECT * FROM alpha_transferability
  - SELECT * FROM beta_transferability(0.5)
  - SELECT * FROM beta_transferability(0.375) (off the grid of 0.01 steps: scans the rows)
  - SELECT * FROM transferability_summary
  - SELECT * FROM flat_earthers
and the peak resident memory of this process (generation and queries).
Targets: <= 64 bytes a row; each view under 2 s at 10^8 rows on a 2-core machine. The views
read transfer_counts (per-cell counts the writer keeps); the generated rows are counted
into it at once after generation, as migration 0008 does, and that time is printed too.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from sigwarehouse import store
from sigwarehouse.store import transfer_counts

TASKS = {"emotion": 5, "genre": 5, "spoof": 2}
MODELS_PER_TASK = 8
KINDS = 3  # sufficient, complete, inverse

# One batch of clips of one task: every (source, clip, kind, target) row. `raw` is a random
# distribution (cubed uniforms, normalised: peaked like a classifier's output); the
# source's class is the target's top-1 for about 60 % of rows.
BATCH_SQL = f"""
INSERT INTO signal_probs
WITH grid AS (
    SELECT $base + c AS clip_id, s, k, tm,
           list_transform(range($n), lambda j: pow(random(), 3)) AS raw,
           random() AS u
    FROM range($clips) a(c), range({MODELS_PER_TASK}) b(s), range({KINDS}) d(k),
         range({MODELS_PER_TASK}) e(tm)
),
normalised AS (
    SELECT *, list_transform(raw, lambda x: (x / list_sum(raw))::FLOAT) AS probs FROM grid
),
scored AS (
    SELECT *, (list_position(probs, list_max(probs)) - 1)::SMALLINT AS top1,
           (-list_sum(list_transform(probs, lambda p: p * log2(greatest(p, 1e-12)))))::FLOAT
               AS entropy_bits
    FROM normalised
)
SELECT $task[1] || 'm' || s, clip_id, 'h', ['sufficient', 'complete', 'inverse'][k + 1],
       $task[1] || 'm' || tm,
       (CASE WHEN u < 0.6 THEN top1 ELSE (top1 + 1) % $n END)::SMALLINT,
       probs, top1, entropy_bits, '00000000-0000-0000-0000-000000000000'
FROM scored
ORDER BY s, k, tm, clip_id
"""


def generate(path: Path, rows: int, batch_clips: int, memory_limit: str) -> None:
    store.init(path)
    con = duckdb.connect(str(path))
    con.execute(f"SET memory_limit = '{memory_limit}'")
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
        # one explanation per (model, clip): the views read its mask sizes and the
        # parameter set (a sufficient mask of 0 bins on one clip in seven: silence)
        con.execute(
            f"""
            INSERT INTO explanations (model, clip_id, params_hash, run_id, n_bins, orig_class,
                                      orig_conf, responsibility, sufficient_size,
                                      complete_size, queries)
            SELECT ?[1] || 'm' || s, ? + c, 'h', '00000000-0000-0000-0000-000000000000',
                   24001, (hash(c, s) % ?)::SMALLINT, 0.9, ''::BLOB, (c % 7) * 40, 500, 1000
            FROM range(?) a(c), range({MODELS_PER_TASK}) b(s)
            """,
            [task, clip_base, n_labels, clips_per_task],
        )
        clip_base += clips_per_task
    con.execute("CHECKPOINT")
    before = used_bytes(con)
    clip_base = 0
    for task, n_labels in TASKS.items():
        for first in range(0, clips_per_task, batch_clips):
            n = min(batch_clips, clips_per_task - first)
            con.execute(
                BATCH_SQL, {"base": clip_base + first, "n": n_labels, "clips": n, "task": task}
            )
        clip_base += clips_per_task
    con.execute("CHECKPOINT")
    n = con.execute("SELECT count(*) FROM signal_probs").fetchone()[0]
    print(f"signal_probs: {(used_bytes(con) - before) / n:.1f} bytes a row in the file")
    # the per-cell counts the views read: the writer keeps them batch by batch; rows
    # generated here are counted afresh at once, as migration 0008 and `sigwh recount` do
    start = time.perf_counter()
    with store.transaction(con):
        transfer_counts.rebuild(con)
    con.execute("CHECKPOINT")
    cells = con.execute("SELECT count(*) FROM transfer_counts").fetchone()[0]
    print(f"transfer_counts: {cells:,} rows, counted in {time.perf_counter() - start:.1f} s")
    con.close()


def used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of the file's blocks in use (free blocks left out)."""
    size, used = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size()"
    ).fetchone()
    return size * used


QUERIES = {
    "alpha_transferability": "SELECT * FROM alpha_transferability",
    "beta_transferability(0.5)": "SELECT * FROM beta_transferability(0.5)",
    # off the grid 0.01, ..., 1.00: read from the rows, not the counts
    "beta_transferability(0.375)": "SELECT * FROM beta_transferability(0.375)",
    "transferability_summary": "SELECT * FROM transferability_summary",
    "flat_earthers": "SELECT * FROM flat_earthers",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--batch-clips", type=int, default=2048, help="clips per generated batch")
    ap.add_argument("--memory-limit", default="4GB", help="DuckDB's memory limit")
    ap.add_argument("--export", action="store_true", help="also time `sigwh export --parquet`")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-views-"))
    path = work / "big.duckdb"
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.rows, args.batch_clips, args.memory_limit)
        print(f"generated in {time.perf_counter() - start:.1f} s: {path}")
    con = duckdb.connect(str(path), read_only=True)
    n = con.execute("SELECT count(*) FROM signal_probs").fetchone()[0]
    size = path.stat().st_size
    print(
        f"signal_probs rows: {n:,}; file {size / 1e6:.0f} MB, {size / n:.1f} bytes a row "
        "(the whole file over signal_probs rows); threads 2"
    )
    con.execute("SET threads = 2")
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    for name, sql in QUERIES.items():
        con.execute(sql).fetchall()  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = con.execute(sql).fetchall()
            times.append(time.perf_counter() - start)
        print(f"{name:<28} {min(times):6.3f} s  ({len(result)} rows)")
    con.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB")
    if args.export:
        export(path, work / "parquet")


def export(path: Path, out: Path) -> None:
    """`sigwh export --parquet` in its own process (its peak memory is that process's),
    then the views over the Parquet files in place, as on_parquet.sql puts them."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), "export", "--parquet",
         str(out)], check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    seconds = time.perf_counter() - start
    print(f"export --parquet: {seconds:.1f} s, {size:.0f} MB, peak memory {peak:.0f} MB")
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET file_search_path = ?", [str(out)])  # its paths are relative to `out`
    con.execute((out / "on_parquet.sql").read_text())
    for name, sql in QUERIES.items():
        con.execute(sql).fetchall()  # warm-up
        start = time.perf_counter()
        rows = con.execute(sql).fetchall()
        print(f"  on Parquet: {name:<28} {time.perf_counter() - start:6.3f} s  ({len(rows)} rows)")
    con.close()


if __name__ == "__main__":
    main()
