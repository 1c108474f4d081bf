"""The two warehouses whose report tables are checked byte for byte against the expected
set (tests/expected_report/, tests/test_report_tables.py), and how their tables are read.

- `small`: tests/small_warehouse.py's hand-made ingest result (seed 7, ten clips a task,
  real audio, masks, silence, planted β values): every section it has data for;
- `bench`: bench/bench_views.py's generator at BENCH_ROWS rows (3 tasks of 8 models, 40
  clips a task, random probabilities): the shape the benchmark scales up.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import math
from pathlib import Path

import duckdb
from small_warehouse import fill

from sigwarehouse import store
from sigwarehouse.analyses import build_report

REPO = Path(__file__).resolve().parents[1]
BENCH_ROWS = 40 * 8 * 3 * 8 * 3  # 40 clips a task: every test above its minimum


def small(folder: Path) -> Path:
    path, _ = store.init(folder / "small.duckdb")
    fill(path)
    return path


def bench(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_views", REPO / "bench/bench_views.py")
    bench_views = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_views)
    path = folder / "bench.duckdb"
    with contextlib.redirect_stdout(io.StringIO()):  # its figures are not the test's
        bench_views.generate(path, BENCH_ROWS, batch_clips=2048, memory_limit="1GB")
    return path


WAREHOUSES = {"small": small, "bench": bench}


def report_tables(path: Path, out: Path) -> dict[str, str]:
    """file name -> text of every CSV the report of `path` writes, with each run id (a
    random UUID per warehouse) replaced by its rank among the warehouse's runs."""
    build_report(path, out, chart_files=False)
    con = duckdb.connect(str(path), read_only=True)
    try:
        runs = [str(r) for (r,) in con.execute("SELECT run_id FROM runs ORDER BY ALL").fetchall()]
    finally:
        con.close()
    tables = {}
    for table in sorted((out / "tables").glob("*.csv")):
        text = table.read_text(encoding="utf-8")
        for i, run in enumerate(runs):
            text = text.replace(run, f"run-{i}").replace(run[:8], f"run-{i}")
        tables[table.name] = text
    return tables


def differences(expected: str, got: str, name: str) -> list[str]:
    """Where two CSV texts differ: a different header, row count or cell. Numbers that
    differ only in the last bits of a double (relative 1e-12) are the same number: the
    report's code before issue 33 already varied there from run to run (DuckDB sums
    doubles in parallel, in no fixed order)."""
    want, have = list(csv.reader(io.StringIO(expected))), list(csv.reader(io.StringIO(got)))
    if len(want) != len(have) or (want and want[0] != have[0]):
        return [f"{name}: header or row count differs ({len(want)} rows expected, {len(have)})"]
    out = []
    for i, (a_row, b_row) in enumerate(zip(want, have, strict=True)):
        cells = zip(want[0], a_row, b_row, strict=True) if len(a_row) == len(b_row) else None
        if cells is None:
            out.append(f"{name} row {i}: {len(a_row)} cells expected, {len(b_row)}")
            continue
        for column, a, b in cells:
            if a != b and not _same_number(a, b):
                out.append(f"{name} row {i} column {column}: expected {a!r}, got {b!r}")
    return out


def _same_number(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)
