"""α between the pretrained models of the gender and speech-music tasks, both ways: the
explanations the demo leaves out (the inaSpeechSegmenter CNNs, dear on a CPU) added to a
copy of a demo warehouse, then each task's α matrix among its python-kind models.

    make demo                                        # or any warehouse `sigwh demo` built
    OMP_NUM_THREADS=1 python bench/bench_pretrained_alpha.py --warehouse warehouse.duckdb

The copy is explained with the warehouse's current parameter set (the demo's `quick`
preset) on the clips the demo registered (four a label), exactly as `sigwh ingest --model
M` would on it; the demo's own file is not changed. Per model it prints the clips
explained, the seconds and queries an explanation took (one process, the threads of
OMP_NUM_THREADS), then per task, dataset and kind of signal the α matrix (rows: whose
signals; columns: the model asked) with n, from the `alpha_transferability` view.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sigwarehouse import store
from sigwarehouse.jobs import ingest
from sigwarehouse.records import current_params

MODELS = ("ina-gender", "ina-sm", "ina-smn")
TASKS = ("gender", "speech-music")


def explain(path: Path, model: str) -> None:
    with store.opened(path, read_only=True) as con:
        shown = current_params(con)
        if shown is None:
            raise SystemExit(f"{path} has no parameter set yet: build it with `sigwh demo`")
        plan = ingest.plan_ingest(con, model, shown.params())
    start = time.perf_counter()
    summary = ingest.run_ingest(path, plan)
    seconds = time.perf_counter() - start
    with store.opened(path, read_only=True) as con:
        n, queries = con.execute(
            "SELECT count(*), median(queries) FROM explanations WHERE model = ?", [model]
        ).fetchone()
    print(
        f"{model}: {summary.counters.clips_done} clip(s) explained in {seconds:.0f} s "
        f"({seconds / max(summary.counters.clips_done, 1):.0f} s a clip, median {queries:.0f} "
        f"queries; {n} explanations of it stored)",
        flush=True,
    )


def alpha_tables(path: Path) -> None:
    with store.opened(path, read_only=True) as con:
        rows = con.execute(
            """
            SELECT a.task, a.dataset, a.kind, a.source_model, a.target_model, a.alpha,
                   a.n_signals
            FROM alpha_transferability AS a
            JOIN models AS s ON s.model = a.source_model AND s.kind = 'python'
            JOIN models AS t ON t.model = a.target_model AND t.kind = 'python'
            WHERE a.task IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY ALL
            """,
            [list(TASKS)],
        ).fetchall()
    groups: dict[tuple, dict[tuple[str, str], tuple[float, int]]] = {}
    for task, dataset, kind, source, target, alpha, n in rows:
        groups.setdefault((task, dataset, kind), {})[(source, target)] = (alpha, n)
    for (task, dataset, kind), cells in groups.items():
        models = sorted({m for pair in cells for m in pair})
        print(f"\n{task} / {dataset}, {kind} signals: α (n); rows: whose signals")
        print(" " * 14 + "".join(f"{m:>16}" for m in models))
        for source in models:
            line = "".join(
                f"{f'{cells[source, t][0]:.2f} ({cells[source, t][1]})':>16}"
                if (source, t) in cells
                else f"{'-':>16}"
                for t in models
            )
            print(f"{source:>14}{line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a demo warehouse")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sigwh-bench-alpha-") as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copy(args.warehouse, copy)
        for model in args.models:
            explain(copy, model)
        alpha_tables(copy)


if __name__ == "__main__":
    main()
