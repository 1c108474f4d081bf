"""Writing a job's batches: clips/s stored, executemany (before) against Arrow (after).

    python bench/bench_write.py [--batches 10] [--before-batches 3] [--clips-per-batch 32]

Builds realistic ingest batches with numpy (no model): per clip one `explanations` row
(a zlib'd float16 responsibility map over 3 s at 16 kHz, i.e. 24,001 rfft bins,
piecewise constant over bands, and packed sufficient and complete masks), one
`original_probs` row, and the 45 `signal_probs` rows a real ingest writes (3 signals on
15 models of the task; 8 labels). Each batch is written into a fresh warehouse file made
by `store.init`, as a job writes it: open the file, one transaction with the rows
and the run's counters, close. Two ways, measured in the same run:
  - before: `executemany` per table (how write_path.write_batch wrote until it used Arrow),
    kept here as the reference;
  - after: `jobs.ingest.write_batch`, i.e. write_path.write_batch, opening and closing the
    file for every batch (how the ingest job wrote until it held the file);
  - held: the ingest job's writer (`jobs.ingest.ingest_writer`, default HoldPolicy),
    which keeps the file open across batches that come quickly (up to 16 batches or
    2 s per open), still one transaction per batch; timed from the first batch until
    the writer has closed the file (its last checkpoint included).
Prints clips/s for each (opening and closing the file included, as in a job), the
milliseconds of a bare open/close of the file (a fixed cost of every batch), and checks
that all files end up with the same rows. Target: >= 250 clips/s (the job's way, held)
on a 2-core machine, into a new warehouse.

--prefill-batches N first stores N batches (untimed) in both files: the cost of closing
the file grows with the rows stored, as DuckDB's checkpoint rewrites the primary-key
indexes whole (duckdb/duckdb#24848), and a job closes the file after every batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from sigwarehouse import store
from sigwarehouse.freqrex.spectral import pack_mask
from sigwarehouse.jobs import ingest
from sigwarehouse.signals import SIGNAL_KINDS, encode_responsibility
from sigwarehouse.store import write_path

N_BINS = 3 * 16000 // 2 + 1  # rfft bins of a 3 s clip at 16 kHz
N_LABELS = 8
N_TARGETS = 15  # models of the task: 3 signals x 15 = 45 signal_probs rows per clip
PARAMS_HASH = "bench0123456789ab"


def band_map(rng: np.random.Generator, n_bands: int) -> np.ndarray:
    """Values constant over random contiguous bands of the bins, as freqrex's maps are."""
    edges = np.sort(rng.choice(np.arange(1, N_BINS), n_bands - 1, replace=False))
    return np.repeat(rng.random(n_bands), np.diff(np.r_[0, edges, N_BINS]))


def make_batch(rng: np.random.Generator, first_clip: int, n_clips: int, run_id: str) -> tuple:
    """(explanations, original_probs, signal_probs) rows of n_clips clips, in the columns
    and Python types jobs/ingest.py builds them with."""
    targets = [f"model{i:02d}" for i in range(N_TARGETS)]
    rows_e, rows_o, rows_s = [], [], []
    for clip_id in range(first_clip, first_clip + n_clips):
        responsibility = band_map(rng, 256)
        sufficient = band_map(rng, 64) > 0.9
        complete = band_map(rng, 64) > 0.5
        probs = rng.dirichlet(np.ones(N_LABELS)).astype(np.float32)
        cls = int(probs.argmax())
        rows_e.append(
            ("model00", clip_id, PARAMS_HASH, run_id, N_BINS, cls, float(probs[cls]),
             encode_responsibility(responsibility),
             pack_mask(sufficient), int(sufficient.sum()), None,
             pack_mask(complete), int(complete.sum()), None,
             int(rng.integers(300, 900)), json.dumps({"sufficient": 0.1, "complete": 0.3}),
             float(rng.random())),
        )  # fmt: skip
        entropy = float(-(probs * np.log2(probs)).sum())
        rows_o.append(("model00", clip_id, probs.tolist(), cls, entropy, run_id))
        for kind in SIGNAL_KINDS:
            for target in targets:
                p = rng.dirichlet(np.ones(N_LABELS)).astype(np.float32)
                h = float(-(p * np.log2(p)).sum())
                rows_s.append(
                    ("model00", clip_id, PARAMS_HASH, kind, target, cls, p.tolist(),
                     int(p.argmax()), h, run_id)
                )  # fmt: skip
    return rows_e, rows_o, rows_s


def write_executemany(
    path: Path, run_id: str, counters: write_path.RunCounters, *rows: list
) -> None:
    """The reference: how write_path.write_batch wrote a batch before (one statement per row)."""
    tables = [
        ("explanations", ingest.EXPLANATION_COLUMNS),
        ("original_probs", ingest.ORIGINAL_COLUMNS),
        ("signal_probs", ingest.SIGNAL_COLUMNS),
    ]
    with store.opened(path) as con, store.transaction(con):
        for (table, cols), batch in zip(tables, rows, strict=True):
            marks = ", ".join("?" * len(cols))
            # signal_probs has no key index since migration 0007: OR IGNORE needs one
            verb = "INSERT" if table == "signal_probs" else "INSERT OR IGNORE"
            sql = f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({marks})"
            con.executemany(sql, batch)
        write_path.update_run(con, run_id, counters)


def write_arrow(path: Path, run_id: str, counters: write_path.RunCounters, *rows: list) -> None:
    """The new path, exactly as the ingest job calls it."""
    ingest.write_batch(path, run_id, counters, *rows, [])


def new_warehouse(folder: Path, name: str) -> tuple[Path, str]:
    path, _ = store.init(folder / f"{name}.duckdb")
    with store.opened(path) as con:
        run_id = write_path.start_run(
            con, job="bench-write", model="model00", task="bench", dataset=None, params={},
            params_hash=PARAMS_HASH, seed=0, device="cpu",
        )  # fmt: skip
    return path, run_id


def measure(
    folder: Path, name: str, write, n_batches: int, clips: int, prefill: int
) -> list[float]:
    """Seconds per batch of writing n_batches batches (the same seeded rows every time)
    after `prefill` batches written the new way, untimed."""
    path, run_id = new_warehouse(folder, name)
    rng = np.random.default_rng(0)
    counters = write_path.RunCounters()
    times = []
    for b in range(prefill + n_batches):
        rows = make_batch(rng, 1 + b * clips, clips, run_id)
        counters.clips_done += clips
        start = time.perf_counter()
        (write if b >= prefill else write_arrow)(path, run_id, counters, *rows)
        times.append(time.perf_counter() - start)
    return times[prefill:]


def measure_held(folder: Path, n_batches: int, clips: int, prefill: int) -> list[float]:
    """Seconds of writing n_batches batches through the ingest job's writer (the file
    held across batches), after `prefill` batches written the same way, untimed; one
    figure, the total, as the writes overlap nothing here and the last close counts."""
    path, run_id = new_warehouse(folder, "held")
    rng = np.random.default_rng(0)
    counters = write_path.RunCounters()
    batches = [make_batch(rng, 1 + b * clips, clips, run_id) for b in range(prefill + n_batches)]
    if prefill:
        with ingest.ingest_writer(path, run_id, counters) as write:
            for rows in batches[:prefill]:
                write(*rows, [])
    start = time.perf_counter()
    with ingest.ingest_writer(path, run_id, counters) as write:
        for rows in batches[prefill:]:
            counters.clips_done += clips
            write(*rows, [])
    return [time.perf_counter() - start]


def bare_open(folder: Path, n: int = 10) -> float:
    """Seconds to open (with its checks) and close the file as write_batch does."""
    path, _ = new_warehouse(folder, "open")
    start = time.perf_counter()
    for _ in range(n):
        with store.opened(path, package_views=False):
            pass
    return (time.perf_counter() - start) / n


def same_rows(a: Path, b: Path, n_batches: int, clips: int) -> bool:
    """Whether b's first n_batches batches hold exactly a's rows (run ids aside)."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        last = n_batches * clips
        for table in ("explanations", "original_probs", "signal_probs"):
            sides = [
                f"SELECT * EXCLUDE (run_id) FROM {db}.{table} WHERE clip_id <= {last}"
                for db in ("a", "b")
            ]
            diff = con.execute(
                f"SELECT count(*) FROM (({sides[0]} EXCEPT ALL {sides[1]})"
                f" UNION ALL ({sides[1]} EXCEPT ALL {sides[0]}))"
            ).fetchall()[0][0]
            if diff:
                return False
        return True
    finally:
        con.close()


def report(label: str, times: list[float], clips: int, n_batches: int | None = None) -> float:
    if n_batches is not None:  # one total for n_batches batches
        rate = clips * n_batches / sum(times)
        print(
            f"{label}: {rate:8.1f} clips/s  ({n_batches} batches of {clips} clips in "
            f"{sum(times):.2f} s, the last close included)"
        )
        return rate
    rate = clips * len(times) / sum(times)
    print(
        f"{label}: {rate:8.1f} clips/s  ({len(times)} batches of {clips} clips; per batch "
        f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms)"
    )
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batches", type=int, default=10, help="batches written the new way")
    ap.add_argument("--before-batches", type=int, default=3, help="batches for executemany")
    ap.add_argument("--clips-per-batch", type=int, default=32)
    ap.add_argument("--prefill-batches", type=int, default=0, help="batches stored first, untimed")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-write-"))
    work.mkdir(parents=True, exist_ok=True)
    clips = args.clips_per_batch

    rows_e, rows_o, rows_s = make_batch(np.random.default_rng(0), 1, clips, "x")
    blob = sum(len(r[7]) + len(r[8]) + len(r[11]) for r in rows_e) / clips
    print(
        f"batch: {clips} clips = {len(rows_e)} explanations ({blob:,.0f} bytes of blobs per "
        f"clip), {len(rows_o)} original_probs, {len(rows_s)} signal_probs rows"
    )
    print(
        f"open + close of the warehouse alone, as a batch write opens it: "
        f"{bare_open(work) * 1000:.0f} ms"
    )
    prefill = args.prefill_batches
    if prefill:
        print(f"each warehouse holds {prefill * clips:,} clips' rows before the timed batches")
    before = measure(work, "before", write_executemany, args.before_batches, clips, prefill)
    after = measure(work, "after", write_arrow, args.batches, clips, prefill)
    held = measure_held(work, args.batches, clips, prefill)
    rate_before = report("before (executemany)         ", before, clips)
    rate_after = report("after  (Arrow, open per batch)", after, clips)
    rate_held = report("held   (Arrow, file held)     ", held, clips, args.batches)
    print(
        f"speed-up: Arrow {rate_after / rate_before:.1f}x executemany; holding the file "
        f"{rate_held / rate_after:.2f}x opening it per batch; target >= 250 clips/s: "
        f"{'met' if rate_held >= 250 else 'NOT met'} ({rate_held:.1f})"
    )
    n = prefill + min(args.before_batches, args.batches)
    same = all(
        same_rows(work / "before.duckdb", work / f"{name}.duckdb", n, clips)
        for name in ("after", "held")
    )
    print(f"same rows stored all three ways: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
