"""Accuracy of each model on each dataset (the `model_accuracy` view), with its n and a
Wilson interval, beside the catalog's recorded accuracy.

The clips are independent trials, so the accuracy is a share of n clips and its Wilson
interval (analyses.inference) is valid at every n, also at 0 and 1, where a percentile
bootstrap would give a point: with 2 clips both right it is [0.34, 1].
"""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import count, has_relations, query
from sigwarehouse.analyses.inference import LEVEL, with_wilson
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Model accuracy"
INTRO = (
    "The share of each dataset's clips whose top-1 class on the model is the clip's label "
    "(view `model_accuracy`), from the original probabilities stored by ingestion, with "
    f"`n_clips` and its {LEVEL:.0%} Wilson interval (`lo`, `hi`; valid at any n: with few "
    "clips it is wide, which is what few clips say). `reported` is the accuracy the "
    "catalog states for the model, measured elsewhere (on the evaluation split for the "
    "shipped models), and `reported_n` the clips it was measured on where the catalog says."
)


def table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, dataset, model, backbone, size_M, n_clips, n_correct, accuracy, lo, hi,
    reported, reported_n per (task, dataset, model)."""
    frame = query(
        con,
        """
        SELECT a.task, a.dataset, a.model, m.backbone, m.n_params / 1e6 AS size_M,
               a.n_clips, round(a.accuracy * a.n_clips)::BIGINT AS n_correct,
               a.accuracy::DOUBLE AS accuracy, m.reported_accuracy AS reported
        FROM model_accuracy AS a LEFT JOIN models AS m USING (model)
        ORDER BY a.task, a.dataset, a.model
        """,
    )
    reported_n = reported_counts(con, frame["model"].to_list())
    return with_wilson(frame, "n_correct", "n_clips").with_columns(
        pl.Series("reported_n", [reported_n.get(m) for m in frame["model"]], dtype=pl.Int64),
    ).select(
        "task", "dataset", "model", "backbone", "size_M", "n_clips", "n_correct", "accuracy",
        "lo", "hi", "reported", "reported_n",
    )  # fmt: skip


def reported_counts(con: duckdb.DuckDBPyConnection, models: list[str]) -> dict[str, int]:
    """model -> clips the catalog's accuracy was measured on, where the warehouse says."""
    columns = {c for (c,) in con.execute("SELECT name FROM pragma_table_info('models')").fetchall()}
    if "reported_accuracy_n" not in columns or not models:
        return {}
    rows = con.execute(
        "SELECT model, reported_accuracy_n FROM models WHERE reported_accuracy_n IS NOT NULL"
    ).fetchall()
    return dict(rows)


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """Accuracy per (task, dataset, model): one table and one chart of points with their
    Wilson intervals, the catalog's figure beside them.

    `missing` is set when no original probabilities are stored.
    """
    section = Section("accuracy", TITLE, INTRO)
    if not has_relations(con, "model_accuracy") or count(con, "original_probs") == 0:
        section.missing = "No original probabilities are stored yet: run `sigwh ingest`."
        return section
    frame = table(con)
    section.tables.append(
        Table("accuracy", f"Accuracy per model and dataset, with n and its {LEVEL:.0%} "
              "Wilson interval, beside the catalog's.", frame)
    )  # fmt: skip
    long = (
        pl.concat(
            [
                frame.select(
                    "dataset",
                    "model",
                    "n_clips",
                    "lo",
                    "hi",
                    pl.col("accuracy").alias("value"),
                    pl.lit("this warehouse").alias("of"),
                ),
                frame.select(
                    "dataset",
                    "model",
                    pl.col("reported_n").alias("n_clips"),
                    pl.lit(None, pl.Float64).alias("lo"),
                    pl.lit(None, pl.Float64).alias("hi"),
                    pl.col("reported").alias("value"),
                    pl.lit("catalog").alias("of"),
                ),
            ]  # fmt: skip
        )
        .drop_nulls("value")
        .with_columns(top=pl.coalesce("hi", "value"))
    )  # where n is written
    base = alt.Chart().encode(
        x=alt.X("model:N", title=None),
        xOffset=alt.XOffset("of:N", sort=["this warehouse", "catalog"]),
        color=alt.Color("of:N", sort=["this warehouse", "catalog"], title=None),
    )
    points = base.mark_point(filled=True, size=50).encode(
        y=alt.Y("value:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        tooltip=["dataset", "model", "of", "n_clips", "value", "lo", "hi"],
    )
    bars = base.mark_rule().encode(y="lo:Q", y2="hi:Q")
    counts = base.mark_text(dy=-8, fontSize=9).encode(
        y=alt.Y("top:Q"), text=alt.Text("n_clips:Q", format="d")
    )
    # one panel per dataset, each with its own models (a concatenation, not a facet: Vega
    # cannot size faceted layers with independent scales)
    panels = [
        alt.layer(bars, points, counts, data=long)
        .transform_filter(alt.datum.dataset == dataset)
        .properties(width=alt.Step(18), height=160, title=dataset)
        for dataset in sorted(frame["dataset"].unique())
    ]
    chart = alt.concat(*panels).resolve_scale(x="independent", xOffset="independent")
    section.charts.append(
        Chart(
            "accuracy",
            f"Accuracy of each model, per dataset: this warehouse's with its {LEVEL:.0%} Wilson "
            "interval and n (the number above it), beside the catalog's recorded figure.",
            chart,
        )
    )
    return section
