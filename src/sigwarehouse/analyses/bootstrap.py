"""Bootstrap confidence intervals on each α cell (beyond the paper, which reports none).

The unit resampled is the signal, i.e. the clip that the source model explained: for a
source model, kind and (task, dataset, parameter set), its clips are drawn with
replacement B times and α is recomputed on every target for each draw, so the cells of
one row share their draws (as they share their signals). The interval is the percentile
interval. Each row's generator is seeded from the seed and the row's names, so a cell's
interval does not change when other models are added. Like the α matrices, it covers each
task's shown parameter set (view `parameter_sets`).
"""

from __future__ import annotations

import zlib

import altair as alt
import duckdb
import numpy as np
import polars as pl

from sigwarehouse.analyses.common import (
    KINDS,
    NO_CROSS_MODEL,
    groups,
    no_signals_message,
    query,
    slug,
)
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Bootstrap confidence intervals on α"
SEED = 20240601
N_BOOT = 1000
LEVEL = 0.95
PAGE_WIDTH = 1050  # px the panels of a chart may take in the report (legend aside)
PANEL_EXTRA = 70  # px a panel takes beyond its plot: axis, labels, spacing
STEPS = (6, 18)  # px per (target, kind): the narrowest readable, the widest useful
INTRO = (
    f"A {LEVEL:.0%} percentile bootstrap interval for each off-diagonal α cell: the source "
    f"model's signals (one per clip) are resampled with replacement {N_BOOT} times (seed "
    f"{SEED}) and α recomputed. The paper reports no uncertainty; with a few dozen clips "
    "per model, cells closer than the width of their intervals should not be told apart."
)

_SIGNALS_SQL = """
SELECT m.task, c.dataset, s.params_hash, s.kind, s.source_model, s.target_model, s.clip_id,
       (s.top1 = s.source_class)::DOUBLE AS accepted
FROM signal_probs AS s
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = s.source_model
JOIN parameter_sets AS p ON p.task = m.task AND p.params_hash = s.params_hash
WHERE s.kind IN ('sufficient', 'complete') AND p.shown
"""


def _row_rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(names).encode())])


def row_intervals(
    accepted: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, lo, hi) per target for a (clips × targets) 0/1 matrix with NaN where a
    target did not evaluate a clip's signal; resamples whole clips (rows)."""
    n = accepted.shape[0]
    present = ~np.isnan(accepted)
    values = np.where(present, accepted, 0.0)
    boot = np.empty((n_boot, accepted.shape[1]))
    # A draw is n clip indices with replacement; its counts per clip weight the sums. Draws
    # are made in chunks of about 4M indices so memory stays small for large datasets.
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        draws = rng.integers(0, n, size=(min(chunk, n_boot - start), n), dtype=np.int64)
        weights = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot[start : start + len(draws)] = (weights @ values) / (weights @ present)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = values.sum(axis=0) / present.sum(axis=0)
    tail = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boot, [tail, 1.0 - tail], axis=0)
    return alpha, lo, hi


def intervals(
    con: duckdb.DuckDBPyConnection, seed: int = SEED, n_boot: int = N_BOOT, level: float = LEVEL
) -> pl.DataFrame:
    """task, dataset, params_hash, kind, source_model, target_model, n_signals, alpha, lo, hi
    for every off-diagonal cell; deterministic for a seed."""
    signals = query(con, _SIGNALS_SQL)
    out = []
    keys = ["task", "dataset", "params_hash", "kind", "source_model"]
    for key, rows in sorted(signals.group_by(keys), key=lambda g: g[0]):
        wide = rows.pivot(on="target_model", index="clip_id", values="accepted").sort("clip_id")
        targets = sorted(c for c in wide.columns if c != "clip_id")
        matrix = wide.select(targets).to_numpy().astype(np.float64)
        alpha, lo, hi = row_intervals(matrix, _row_rng(seed, *key), n_boot, level)
        n_signals = (~np.isnan(matrix)).sum(axis=0)
        for j, target in enumerate(targets):
            if target != key[4]:
                out.append((*key, target, int(n_signals[j]), alpha[j], lo[j], hi[j]))
    schema = [*keys, "target_model", "n_signals", "alpha", "lo", "hi"]
    return pl.DataFrame(out, schema=schema, orient="row")


def panel_layout(n_panels: int, n_targets: int) -> tuple[int, int]:
    """(panels per row, px per target and kind) so that a row of panels, one per source
    model, fits PAGE_WIDTH: one row when the panels fit at the narrowest step, else as
    many per row as fit."""
    per_target = n_targets * len(KINDS)
    widest = STEPS[0] * per_target + PANEL_EXTRA
    columns = max(1, min(n_panels, PAGE_WIDTH // widest))
    step = (PAGE_WIDTH // columns - PANEL_EXTRA) // per_target
    return columns, max(STEPS[0], min(STEPS[1], step))


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The intervals as a table (sufficient and complete side by side) and a chart per group."""
    section = Section("bootstrap", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = intervals(con)
    if frame.is_empty():
        section.missing = NO_CROSS_MODEL
        return section
    index = ["task", "dataset", "params_hash", "source_model", "target_model"]
    side_by_side = frame.pivot(
        on="kind", index=index, values=["n_signals", "alpha", "lo", "hi"], separator=" "
    ).sort(index)
    section.tables.append(
        Table("bootstrap", f"α with its {LEVEL:.0%} interval, per cell and kind.", side_by_side)
    )
    for task, dataset, params_hash, label, rows in groups(frame):
        base = alt.Chart(rows).encode(
            x=alt.X("target_model:N", title="target"),
            xOffset=alt.XOffset("kind:N", sort=list(KINDS)),
            color=alt.Color("kind:N", sort=list(KINDS)),
        )
        bars = base.mark_rule().encode(
            y=alt.Y("lo:Q", title="α", scale=alt.Scale(domain=[0, 1])), y2="hi:Q"
        )
        points = base.mark_point(filled=True).encode(
            y="alpha:Q",
            tooltip=["source_model", "target_model", "kind", "n_signals", "alpha", "lo", "hi"],
        )
        columns, step = panel_layout(
            rows["source_model"].n_unique(), rows["target_model"].n_unique()
        )
        # One panel per source model, each with its own target axis (a concatenation, not
        # a facet: Vega cannot size faceted layers with independent scales)
        panels = [
            alt.layer(bars, points)
            .transform_filter(alt.datum.source_model == source)
            .properties(width=alt.Step(step), height=160, title=f"source {source}")
            for source in sorted(rows["source_model"].unique())
        ]
        chart = (
            alt.concat(*panels, columns=columns)
            .resolve_scale(x="independent", xOffset="independent", color="shared")
            .properties(title=label)
        )
        section.charts.append(
            Chart(
                slug("bootstrap", task, dataset, params_hash),
                f"{label}: α of each source model's signals on each target, with its interval.",
                chart,
            )
        )
    return section
