"""α and β transferability matrices laid out like the paper's tables 1–3.

One row per source model, one column per target model (the diagonal left blank, as in
the paper), `avg` = mean over the targets other than the source, and the source's size
(millions of parameters), accuracy (view `model_accuracy`) and backbone. One matrix per
(task, dataset, parameter set) and kind (sufficient, complete).

α is shown twice: over all signals, as the paper counts, and over the non-empty ones
only. An empty sufficient mask means the all-zero signal already gets the class: a
target "accepts" it when it gives that class to silence, which says nothing about what
the two models listen to. `n_empty` says how many of the row model's signals are empty.
"""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import KINDS, groups, model_meta, no_signals_message, query, slug
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Transferability matrices"
BETA_EPS = 0.5  # the ε of the β tables; beta_curve shows every ε
INTRO = (
    "α-transferability (view `alpha_transferability`): the share of the row model's "
    "sufficient (or complete) signals whose top-1 class on the column model is the row "
    "model's class for the original clip. `avg` is the mean over the other models (view "
    "`transferability_summary`, `avg_out`). Size is in millions of parameters; accuracy "
    "is the row model's on the dataset. `n_empty` counts the row model's signals whose "
    "mask keeps no bin: the all-zero signal already gets its class, so they are silence, "
    "not evidence, and a column model accepts them when it gives that class to silence "
    "(see the silence card). The second matrix of each kind is α over the non-empty "
    "signals only (view column `alpha_nonempty`). β-transferability (the paper's "
    "definition 4, table macro `beta_transferability(eps)`, shown at "
    f"ε = {BETA_EPS}) counts the signals on which the column model gives the row model's "
    "class *and* is confident: output entropy ≤ ε·log2(number of classes) bits. At ε = 1 "
    "it equals α."
)


def cells(con: duckdb.DuckDBPyConnection, eps: float | None = None) -> pl.DataFrame:
    """Long-form cells: task, dataset, params_hash, kind, source_model, target_model,
    n_signals, n_empty, value, value_nonempty — α and α over non-empty signals from the
    view when eps is None, else β(eps) and its non-empty form from the macro."""
    source = "alpha_transferability" if eps is None else "beta_transferability(?)"
    value = "alpha" if eps is None else "beta"
    return query(
        con,
        f"SELECT task, dataset, params_hash, kind, source_model, target_model, n_signals, "
        f"n_empty, {value}::DOUBLE AS value, {value}_nonempty::DOUBLE AS value_nonempty "
        f"FROM {source} ORDER BY ALL",
        [] if eps is None else [eps],
    )


def accuracy_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, dataset, model, accuracy from `model_accuracy` (empty when nothing is stored)."""
    return query(
        con, "SELECT task, dataset, model, accuracy::DOUBLE AS accuracy FROM model_accuracy"
    )


def matrix(
    group_cells: pl.DataFrame,
    kind: str,
    meta: pl.DataFrame,
    accuracy: pl.DataFrame,
    value: str = "value",
) -> pl.DataFrame:
    """The paper-style matrix of one group and kind, of the cells' `value` column (or
    `value_nonempty`).

    Columns: model, backbone, size_M, accuracy, n_signals (the row model's signals),
    n_empty (those with an empty mask), one column per target model (null on the
    diagonal and where nothing was evaluated or, for value_nonempty, where every signal
    is empty), avg (mean of the row's non-null off-diagonal cells). Rows are sorted by
    model. Every model seen as a source or a target of the group is both a row and a
    column.
    """
    rows = group_cells.filter(pl.col("kind") == kind)
    models = sorted(set(rows["source_model"]) | set(rows["target_model"]))
    off = rows.filter(pl.col("source_model") != pl.col("target_model"))
    wide = {m: [None] * len(models) for m in models}
    index = {m: i for i, m in enumerate(models)}
    for source, target, cell in off.select("source_model", "target_model", value).iter_rows():
        wide[target][index[source]] = cell
    frame = pl.DataFrame(
        {"model": models, **wide}, schema_overrides=dict.fromkeys(models, pl.Float64)
    )
    avg = off.group_by("source_model").agg(pl.col(value).mean().alias("avg"))
    n_signals = rows.group_by("source_model").agg(pl.col("n_signals", "n_empty").max())
    task, dataset = rows["task"][0], rows["dataset"][0]
    acc = accuracy.filter((pl.col("task") == task) & (pl.col("dataset") == dataset))
    out = (
        frame.join(meta.select("model", "backbone", "size_M"), on="model", how="left")
        .join(acc.select("model", "accuracy"), on="model", how="left")
        .join(n_signals.rename({"source_model": "model"}), on="model", how="left")
        .join(avg.rename({"source_model": "model"}), on="model", how="left")
    )
    return out.select(
        "model", "backbone", "size_M", "accuracy", "n_signals", "n_empty", *models, "avg"
    )


def heatmap(group_cells: pl.DataFrame, measure: str) -> alt.TopLevelMixin:
    """Off-diagonal cells as a source × target heatmap, one panel per kind."""
    off = group_cells.filter(pl.col("source_model") != pl.col("target_model"))
    base = alt.Chart().encode(
        x=alt.X("target_model:N", title="target (accepts?)"),
        y=alt.Y("source_model:N", title="source (signals from)"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", title=measure, scale=alt.Scale(domain=[0, 1])),
        tooltip=["source_model", "target_model", "n_signals", alt.Tooltip("value:Q", format=".3f")],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("value:Q", format=".2f"),
        color=alt.condition("datum.value > 0.6", alt.value("white"), alt.value("black")),
    )
    return (
        alt.layer(rect, text, data=off)
        .properties(width=alt.Step(36), height=alt.Step(24))
        .facet(column=alt.Column("kind:N", title=None, sort=list(KINDS)))
    )


# (file name prefix, caption, ε of β or None for α, the cells' column shown)
MATRICES = (
    ("alpha", "α-transferability of {kind} signals.", None, "value"),
    (
        "alpha_nonempty",
        "α-transferability of non-empty {kind} signals (silence left out).",
        None,
        "value_nonempty",
    ),
    ("beta", "β-transferability (ε = {eps}) of {kind} signals.", BETA_EPS, "value"),
)


def silence_note(label: str, kind: str, kind_cells: pl.DataFrame) -> str | None:
    """A note on how many of the group's signals of a kind are empty, or None if none."""
    own = kind_cells.group_by("source_model").agg(pl.col("n_signals", "n_empty").max())
    n_empty, n_signals = int(own["n_empty"].sum()), int(own["n_signals"].sum())
    if n_empty == 0:
        return None
    return (
        f"{label}: {n_empty} of the {n_signals} {kind} signals are empty (the all-zero "
        "signal already gets the class): they count in α, and not in α over non-empty "
        "signals."
    )


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """α matrices (sufficient, complete) over all and over non-empty signals with a
    heatmap per group, and β(0.5) matrices."""
    section = Section("transferability", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    meta, accuracy = model_meta(con), accuracy_table(con)
    for prefix, caption, eps, value in MATRICES:
        for task, dataset, params_hash, label, rows in groups(cells(con, eps)):
            for kind in KINDS:
                kind_cells = rows.filter(pl.col("kind") == kind)
                if kind_cells.is_empty():
                    if prefix == "alpha":
                        section.notes.append(f"{label}: no {kind} signals.")
                    continue
                note = silence_note(label, kind, kind_cells) if prefix == "alpha" else None
                section.notes += [note] if note else []
                section.tables.append(
                    Table(
                        slug(prefix, task, dataset, params_hash, kind),
                        caption.format(kind=kind, eps=eps),
                        matrix(rows, kind, meta, accuracy, value),
                        group=label,
                    )
                )
            if prefix != "alpha":
                continue
            if rows.filter(pl.col("source_model") == pl.col("target_model")).height == rows.height:
                section.notes.append(
                    f"{label}: no model's signals have been evaluated on another model yet."
                )
            else:
                section.charts.append(
                    Chart(
                        slug("alpha", task, dataset, params_hash),
                        "α of each source model's signals (rows) on each target (columns).",
                        heatmap(rows, "α"),
                        group=label,
                    )
                )
    return section
