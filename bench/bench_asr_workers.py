"""The ASR step (`sigwh asr`, the demo's section 5.4) with pocketsphinx in 1 and in N
worker processes, on the same signals, in one run: seconds, signals per second, and
whether the stored transcripts and STOI are equal.

By default it builds a demo-like warehouse first (the spoof task's evaluation clips,
--per-label of each label, --models spoof models explained with the demo's 'quick'
preset; not timed); --warehouse takes a copy of a warehouse that holds explanations
instead (a finished `sigwh demo`'s, say), migrated and its transcripts and STOI deleted
in the copy.
Each setting runs on its own copy of that warehouse, so each does all the work:

    python bench/bench_asr_workers.py                      # 1 worker, then one per core
    python bench/bench_asr_workers.py --workers 1 --workers 2 --workers 4
    python bench/bench_asr_workers.py --warehouse out/warehouse.duckdb
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import small_ingest

from sigwarehouse import store
from sigwarehouse.freqrex.params import PRESETS
from sigwarehouse.jobs import asr, ingest


def build(path: Path, models: int, per_label: int) -> None:
    """The demo's shape on the spoof task: `per_label` clips of each label explained by
    the first `models` spoof models with the demo's preset."""
    for model in small_ingest.build(path, models=models, store_audio=True):
        with store.opened(path, read_only=True) as con:
            plan = ingest.plan_ingest(
                con, model, PRESETS["quick"], dataset=small_ingest.DATASET, per_label=per_label
            )
        ingest.run_ingest(path, plan)


def stored(path: Path) -> tuple[list, list]:
    """The transcripts (with their seconds, last) and the STOI stored, in one order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        texts = con.execute(
            "SELECT clip_id, source_model, params_hash, kind, text, seconds FROM transcripts"
            " ORDER BY ALL"
        ).fetchall()
        stois = con.execute(
            "SELECT clip_id, source_model, params_hash, kind, stoi FROM signal_stoi ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    return texts, stois


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, help="copy this warehouse (default: build)")
    parser.add_argument(
        "--dataset", default=small_ingest.DATASET, help="whose explanations (the demo's ASR)"
    )
    parser.add_argument("--models", type=int, default=5, help="spoof models to explain")
    parser.add_argument("--per-label", type=int, default=4, help="clips of each label")
    parser.add_argument(
        "--workers", type=int, action="append", help="repeatable (default: 1 and run_asr's)"
    )
    args = parser.parse_args()
    settings = args.workers or [1, None]
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        base = Path(tmp) / "base.duckdb"
        if args.warehouse:
            shutil.copy(args.warehouse, base)
            store.init(base)  # migrates an older file, as `sigwh demo` does
            with store.opened(base) as con:
                con.execute("DELETE FROM transcripts")
                con.execute("DELETE FROM signal_stoi")
        else:
            start = time.perf_counter()
            build(base, args.models, args.per_label)
            print(f"built the warehouse in {time.perf_counter() - start:.0f} s (not counted)")
        cores = len(os.sched_getaffinity(0))
        print(f"usable cores: {cores}; load average: {os.getloadavg()[0]:.2f}")
        results = {}
        for workers in settings:
            copy = Path(tmp) / f"w{workers}.duckdb"
            shutil.copy(base, copy)
            with store.opened(copy, read_only=True) as con:
                plan = asr.plan_asr(con, asr.DEFAULT_ASR, dataset=args.dataset)
            start = time.perf_counter()
            summary = asr.run_asr(copy, plan, workers=workers)
            seconds = time.perf_counter() - start
            n = plan.signals()
            texts, stois = stored(copy)
            decoding = sum(seconds for *_, seconds in texts)
            print(
                f"workers {label(workers, n)}: {n} signals in {seconds:.1f} s"
                f" ({n / seconds:.2f} signals/s; the signals' own decoding times sum to"
                f" {decoding:.1f} s; {summary.status})"
            )
            results[workers] = (seconds, [t[:-1] for t in texts], stois)
        first, *rest = settings
        for workers in rest:
            same = results[workers][1:] == results[first][1:]
            speedup = results[first][0] / results[workers][0]
            print(
                f"workers {label(workers, n)} vs {label(first, n)}: transcripts and STOI "
                f"{'equal' if same else 'DIFFER'}; {speedup:.2f}x as fast"
            )


def label(workers: int | None, signals: int) -> str:
    """The setting, and for the default the workers run_asr picks for `signals`."""
    if workers is not None:
        return str(workers)
    return f"default ({max(1, min(asr.default_workers(), signals // asr.SIGNALS_PER_WORKER))})"


if __name__ == "__main__":
    main()
