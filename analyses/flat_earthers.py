"""Flat-earthers: models whose signals others reject and which reject others' signals."""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from analyses.common import (
    NO_CROSS_MODEL,
    Chart,
    Section,
    Table,
    groups,
    no_signals_message,
    query,
    slug,
)

TITLE = "Flat-earthers"
MARGIN = 0.1  # the margin of the `flat_earthers` view, the report's default
INTRO = (
    "The paper calls a model a flat-earther when its signals are rarely accepted by the "
    "other models and it rarely accepts theirs. View `flat_earthers` states the rule: "
    "`avg_out` (mean α of the model's signals on the others) and `avg_in` (mean α of the "
    f"others' signals on it) both lie more than {MARGIN} below the mean of the other "
    "models of the same task, dataset and kind (`peers_out`, `peers_in`). `gap_out` and "
    "`gap_in` show how close each call was; `flat_earthers_at(margin)` applies another "
    "margin."
)


def run(con: duckdb.DuckDBPyConnection, margin: float = MARGIN) -> Section:
    """The rows of `flat_earthers_at(margin)`, a note naming each flagged model, and an
    avg_out/avg_in scatter per group."""
    section = Section("flat_earthers", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = query(
        con,
        "SELECT task, dataset, params_hash, kind, model, avg_out, avg_in, peers_out, peers_in, "
        "gap_out, gap_in, flat_earther FROM flat_earthers_at(?) "
        "ORDER BY task, dataset, kind, model",
        [margin],
    )
    if frame.is_empty():
        section.missing = NO_CROSS_MODEL
        return section
    section.tables.append(Table("flat_earthers", "Every model, with its gaps.", frame))
    flagged = frame.filter(pl.col("flat_earther"))
    if flagged.is_empty():
        section.notes.append(f"No model is a flat-earther at margin {margin}.")
    for task, dataset, kind, model in flagged.select(
        "task", "dataset", "kind", "model"
    ).iter_rows():
        section.notes.append(
            f"{model} is a flat-earther on {task} / {dataset} ({kind} signals, margin {margin})."
        )
    for task, dataset, params_hash, label, rows in groups(frame):
        base = alt.Chart(rows).encode(
            x=alt.X(
                "avg_out:Q",
                title="avg_out: others accept its signals",
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y(
                "avg_in:Q",
                title="avg_in: it accepts others' signals",
                scale=alt.Scale(domain=[0, 1]),
            ),
        )
        points = base.mark_point(filled=True, size=80).encode(
            color=alt.Color(
                "flat_earther:N",
                scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"]),
            ),
            shape=alt.Shape("kind:N"),
            tooltip=["model", "kind", "avg_out", "avg_in", "gap_out", "gap_in", "flat_earther"],
        )
        names = base.mark_text(dx=8, align="left", fontSize=10).encode(text="model:N")
        section.charts.append(
            Chart(
                slug("flat_earthers", task, dataset, params_hash),
                f"{label}: a flat-earther sits low and to the left of its peers.",
                (points + names).properties(width=260, height=260, title=label),
            )
        )
    return section
