"""The small, real ingest that the fault and stress scripts repeat: the spoof task's
evaluation clips and zoo models from the shipped catalog, and light search parameters,
so one clip costs well under a second on a CPU. Also the plain-SQL checks they share:
every stored fact (run ids left out) and a tally of transfer_counts against the rows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from sigwarehouse import catalog, clips, store

REPO = Path(__file__).resolve().parents[1]
TASK = "spoof"
DATASET = "spoof-eval"
# one responsibility tree of depth 2 over coarse bands, short grid and minimising rounds,
# 1-minimality certified up to 64 bins: a few dozen model queries a clip
LIGHT = [
    "--iterations", "1", "--param", "max_depth=2", "--param", "min_band_bins=1024",
    "--param", "grid_size=4", "--param", "grid_rounds=1", "--param", "minimise_rounds=1",
    "--param", "certify_rounds=1", "--param", "per_bin_limit=64", "--param", "variable_hz=8",
]  # fmt: skip


def build(path: Path, models: int = 1, store_audio: bool = False) -> list[str]:
    """A warehouse at `path` with the shipped catalog, the spoof evaluation clips (their
    audio stored in the file with store_audio) and the first `models` spoof models (by
    name; the first is the small 1-D CNN); returns them."""
    store.init(path)
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, DATASET, store_audio=store_audio, progress=False)
        con.execute(
            "DELETE FROM models WHERE task = ? AND model NOT IN"
            " (SELECT model FROM models WHERE task = ? ORDER BY model LIMIT ?)",
            [TASK, TASK, models],
        )
        return [m for (m,) in con.execute(
            "SELECT model FROM models WHERE task = ? ORDER BY model", [TASK]
        ).fetchall()]  # fmt: skip


def facts(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every stored fact of an ingest, run ids left out (they differ between runs)."""
    queries = {
        "explanations": "SELECT model, clip_id, params_hash, n_bins, orig_class,"
        " sufficient_mask, complete_mask, complete_reason FROM explanations",
        "original_probs": "SELECT model, clip_id, top1, probs FROM original_probs",
        "signal_probs": "SELECT source_model, clip_id, kind, target_model, source_class,"
        " top1, probs FROM signal_probs",
        "model_probes": "SELECT model, probe, n_samples, top1 FROM model_probes",
        "transfer_counts": "SELECT * FROM transfer_counts",
        "job_errors": "SELECT model, clip_id, stage FROM job_errors",
    }
    found = {t: con.execute(f"{q} ORDER BY ALL").fetchall() for t, q in queries.items()}
    return {t: [tuple(_hashable(v) for v in row) for row in rows] for t, rows in found.items()}


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


# Cells whose transfer_counts disagree with a plain count of signal_probs: per
# (parameters, source, kind, target), the signals and those keeping the source's class.
# One statement, so one snapshot: bench/stress.py counts its rows in a reader's read.
MISMATCHES = """
WITH counted AS (
    SELECT params_hash, source_model, kind, target_model, count(*) AS n,
           count(*) FILTER (top1 = source_class) AS same
    FROM signal_probs WHERE kind IN ('sufficient', 'complete') GROUP BY ALL
), stored AS (
    SELECT params_hash, source_model, kind, target_model, sum(n) AS n,
           sum(n) FILTER (same_class) AS same
    FROM transfer_counts GROUP BY ALL
)
SELECT * FROM counted FULL JOIN stored
    USING (params_hash, source_model, kind, target_model)
WHERE counted.n IS DISTINCT FROM stored.n
   OR coalesce(counted.same, 0) IS DISTINCT FROM coalesce(stored.same, 0)
"""


def tally_mismatches(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The MISMATCHES rows: empty when the counts are right."""
    return con.execute(MISMATCHES).fetchall()
