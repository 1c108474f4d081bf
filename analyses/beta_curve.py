"""β-transferability as a function of ε, per source model (the paper's supplementary result).

For each ε on a grid, β of a model's signals on each other model comes from the table
macro `beta_transferability(eps)`; the curve is its mean over the other models (the β
version of the `avg` column). As the paper's definition 4 reads, a signal counts when the
other model gives the source's class *and* its output entropy is at most ε·log2(n) bits;
no output over n classes has more entropy than log2(n), so at ε = 1 only the class
matters and the curve ends at the model's α `avg`. `beta_nonempty` is the same mean over
non-empty signals only (the empty ones are silence: the all-zero signal keeps the class).
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
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "β-transferability as a function of ε"
EPS_GRID = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05, 0.10, ..., 1.00
SHOWN_EPS = (0.1, 0.25, 0.5, 0.75, 1.0)  # the columns of the table in the page
INTRO = (
    "β(ε) counts a model's signals that another model accepts with confidence: it gives "
    "the source model's class and its output entropy is at most ε·log2(number of classes) "
    "bits (the paper's definition 4). Each curve is a source model's mean β over the other "
    "models of its task, for ε from 0.05 to 1; at ε = 1 only the class counts, so each "
    "curve ends at the model's mean α (`avg` of the α matrix). A model whose signals others "
    "accept only with doubt has a curve that rises late. `beta_nonempty` leaves out the "
    "empty signals (silence), as α over non-empty signals does."
)


def curve(con: duckdb.DuckDBPyConnection, eps_grid: tuple[float, ...] = EPS_GRID) -> pl.DataFrame:
    """task, dataset, params_hash, kind, model, n_clips (the model's signals: one per
    clip), eps, beta, beta_nonempty: mean β (and β over non-empty signals, NULL when the
    model has none) over targets ≠ model."""
    frames = [
        query(
            con,
            "SELECT task, dataset, params_hash, kind, source_model AS model, "
            "max(n_signals) AS n_clips, ?::DOUBLE AS eps, "
            "avg(beta)::DOUBLE AS beta, avg(beta_nonempty)::DOUBLE AS beta_nonempty "
            "FROM beta_transferability(?) "
            "WHERE source_model <> target_model GROUP BY ALL",
            [eps, eps],
        )
        for eps in eps_grid
    ]
    return pl.concat(frames).sort("task", "dataset", "params_hash", "kind", "model", "eps")


def at_shown_eps(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    """One row per (group, kind, model), one column per ε of SHOWN_EPS, of `value`."""
    return (
        frame.filter(pl.col("eps").is_in(SHOWN_EPS))
        .with_columns(pl.format("ε={}", pl.col("eps")).alias("column"))
        .pivot(
            on="column",
            index=["task", "dataset", "params_hash", "kind", "model", "n_clips"],
            values=value,
        )
        .sort("task", "dataset", "params_hash", "kind", "model")
    )


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """A line chart per group (one line per model and kind) and a table at a few ε."""
    section = Section("beta_curve", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = curve(con)
    if frame.is_empty():
        section.missing = NO_CROSS_MODEL
        return section
    section.tables.append(
        Table(
            "beta_curve",
            "Mean β over the other models, at a few ε (at ε = 1: α).",
            at_shown_eps(frame, "beta"),
        )
    )
    section.tables.append(
        Table(
            "beta_curve_nonempty",
            "The same over non-empty signals only (silence left out).",
            at_shown_eps(frame, "beta_nonempty"),
        )
    )
    section.tables.append(
        Table("beta_curve_full", "Every ε of the grid (CSV only).", frame, in_page=False)
    )
    for task, dataset, params_hash, label, rows in groups(frame):
        x = alt.X("eps:Q", title="ε", scale=alt.Scale(domain=[0, 1]))
        y = alt.Y("beta:Q", title="mean β over other models", scale=alt.Scale(domain=[0, 1]))
        # Lines and points are two layers: with the points drawn by the line mark itself
        # (point=True) Vega draws the kind legend's sample lines without a stroke, so the
        # legend showed the kinds' names but not their dashes.
        dashes = alt.Chart(rows).mark_line().encode(
            x=x,
            y=y,
            color=alt.Color("model:N"),
            strokeDash=alt.StrokeDash(
                "kind:N",
                sort=list(KINDS),
                legend=alt.Legend(
                    symbolType="stroke", symbolStrokeColor="#444", symbolStrokeWidth=2,
                    symbolSize=400,
                ),
            ),
        )  # fmt: skip
        points = (
            alt.Chart(rows)
            .mark_point(filled=True, size=25)
            .encode(
                x=x,
                y=y,
                color=alt.Color("model:N"),
                tooltip=["model", "kind", "eps", alt.Tooltip("beta:Q", format=".3f")],
            )
        )
        lines = alt.layer(dashes, points).properties(width=360, height=220, title=label)
        section.charts.append(
            Chart(
                slug("beta", task, dataset, params_hash), f"{label}: β as a function of ε.", lines
            )
        )
    return section
