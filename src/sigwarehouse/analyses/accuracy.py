"""Accuracy of each model on each dataset (the `model_accuracy` view), with its catalog facts."""

from __future__ import annotations

import altair as alt
import duckdb

from sigwarehouse.analyses.common import count, has_relations, query
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Model accuracy"
INTRO = (
    "The share of each dataset's clips whose top-1 class on the model is the clip's label "
    "(view `model_accuracy`), from the original probabilities stored by ingestion. "
    "`reported` is the accuracy the catalog states for the model, for comparison."
)


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """Accuracy per (task, dataset, model): one table and one bar chart.

    `missing` is set when no original probabilities are stored.
    """
    section = Section("accuracy", TITLE, INTRO)
    if not has_relations(con, "model_accuracy") or count(con, "original_probs") == 0:
        section.missing = "No original probabilities are stored yet: run `sigwh ingest`."
        return section
    frame = query(
        con,
        """
        SELECT a.task, a.dataset, a.model, m.backbone, m.n_params / 1e6 AS size_M,
               a.n_clips, a.accuracy, m.reported_accuracy AS reported
        FROM model_accuracy AS a LEFT JOIN models AS m USING (model)
        ORDER BY a.task, a.dataset, a.model
        """,
    )
    section.tables.append(Table("accuracy", "Accuracy per model and dataset.", frame))
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("model:N", title=None),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("backbone:N"),
            column=alt.Column("dataset:N", title=None),
            tooltip=["task", "dataset", "model", "backbone", "n_clips", "accuracy"],
        )
        .resolve_scale(x="independent")
        .properties(width=alt.Step(28), height=160)
    )
    section.charts.append(Chart("accuracy", "Accuracy of each model, per dataset.", bars))
    return section
