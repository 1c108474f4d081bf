"""Confidence intervals on each α and β cell (beyond the paper, which reports none).

A cell's signals are one per clip (the primary key of `signal_probs`), and clips are
independent, so α of a cell is a share of its n clips: its interval is the Wilson score
interval (analyses.inference), computed from the cell's counts in the views, at a cost
that grows with cells, not signal rows. This replaces a percentile bootstrap over clips,
which for one cell is the same resampling but collapses to a point where every clip is
accepted (α = 1: "1.000 / 1.000 / 1.000" from 2 clips); Wilson's is valid at 0 and 1 and
at every n. The module keeps its name (the section's key and CSV names are `bootstrap`).
Like the α matrices, it covers each task's shown parameter set (view `parameter_sets`).
"""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import (
    KINDS,
    NO_CROSS_MODEL,
    groups,
    no_signals_message,
    query,
    slug,
)
from sigwarehouse.analyses.inference import LEVEL, with_wilson
from sigwarehouse.analyses.transferability import BETA_EPS
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Confidence intervals on α and β"
PAGE_WIDTH = 1050  # px the panels of a chart may take in the report (legend aside)
PANEL_EXTRA = 70  # px a panel takes beyond its plot: axis, labels, spacing
STEPS = (6, 18)  # px per (target, kind): the narrowest readable, the widest useful
INTRO = (
    f"A {LEVEL:.0%} Wilson interval for each off-diagonal α cell, and each β(ε = "
    f"{BETA_EPS}) cell: a cell holds one signal per clip of its source model, so its α is "
    "a share of `n_clips` independent clips, and the Wilson interval is valid at every n, "
    "also where every clip is accepted (α = 1), where a bootstrap over clips would give a "
    "zero-width interval. The paper reports no uncertainty; cells whose intervals "
    "overlap should not be told apart."
)


def intervals(con: duckdb.DuckDBPyConnection, eps: float | None = None) -> pl.DataFrame:
    """task, dataset, params_hash, kind, source_model, target_model, n_clips, n_accepted,
    alpha, lo, hi for every off-diagonal cell of α (eps None) or β(eps) (column `alpha`
    then holds β)."""
    source, value = ("alpha_transferability", "alpha") if eps is None else (
        "beta_transferability(?)", "beta")  # fmt: skip
    frame = query(
        con,
        f"""
        SELECT task, dataset, params_hash, kind, source_model, target_model,
               n_signals AS n_clips, round({value} * n_signals)::BIGINT AS n_accepted,
               {value}::DOUBLE AS alpha
        FROM {source}
        WHERE source_model <> target_model AND kind IN ('sufficient', 'complete')
        ORDER BY task, dataset, params_hash, kind, source_model, target_model
        """,
        [] if eps is None else [eps],
    )
    return with_wilson(frame, "n_accepted", "n_clips")


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
    for name, measure, cells in (
        ("bootstrap", "α", frame),
        ("bootstrap_beta", f"β(ε = {BETA_EPS})", intervals(con, BETA_EPS)),
    ):
        side_by_side = (
            cells.rename({"alpha": "value"})
            .pivot(on="kind", index=index, values=["n_clips", "value", "lo", "hi"], separator=" ")
            .sort(index)
        )
        section.tables.append(
            Table(name, f"{measure} with n and its {LEVEL:.0%} Wilson interval, per cell and "
                  "kind.", side_by_side)
        )  # fmt: skip
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
            tooltip=["source_model", "target_model", "kind", "n_clips", "alpha", "lo", "hi"],
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
                f"{label}: α of each source model's signals on each target, with its {LEVEL:.0%} "
                "Wilson interval.",
                chart,
            )
        )
    return section
