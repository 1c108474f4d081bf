"""bench/bench_gpu.py --smoke: the GPU benchmark's whole path (the stock forward, a
Hugging Face checkpoint saved and registered as kind "hf", the ingest job in bfloat16
with --batch-size auto) on a tiny model on the CPU, so the GPU run works first time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def test_bench_gpu_smoke_runs_end_to_end_and_reports_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    args = ["--smoke", "--device", "cpu", "--budget-s", "16", "--work", str(tmp_path / "w")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_gpu.py"), *args, "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    for line in ("(a) bare forward:", "(b) end-to-end ingest:", "ratio ingest / bare",
                 "queries/s target     : >= 3,000"):  # fmt: skip
        assert line in printed, printed
    figures = json.loads(out.read_text())
    assert figures["smoke"] and figures["device"] == "CPU"
    assert set(figures["bare_clips_per_s"]) == {"4", "8"}
    assert figures["bare_best"] == max(figures["bare_clips_per_s"].values()) > 0
    e2e = figures["ingest"]
    assert e2e["dtype"] == "bfloat16" and e2e["batch_size"] == 64  # auto keeps it on a CPU
    assert e2e["clips"] >= 1 and e2e["queries"] >= e2e["clips"]
    assert abs(figures["ratio"] - e2e["queries_per_s"] / figures["bare_best"]) < 1e-9
    # the warm-up run and the timed run both stored their explanations, in bfloat16
    con = duckdb.connect(str(tmp_path / "w" / "warehouse.duckdb"), read_only=True)
    try:
        (stored,) = con.execute("SELECT count(*) FROM explanations").fetchone()
        runs = con.execute("SELECT params FROM runs WHERE job = 'ingest'").fetchall()
    finally:
        con.close()
    assert stored == e2e["explanations_stored"] > e2e["clips"]
    for (params,) in runs:
        params = json.loads(params)
        assert params["dtype"] == "bfloat16" and params["runtime"]["dtype_asked"] == "bfloat16"
        assert params["runtime"]["models"]["w2v2"] == {"dtype": "bfloat16", "attention": "sdpa"}
