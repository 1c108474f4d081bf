"""Are complete signals more transferable than sufficient ones? A paired t-test.

As in the paper (section 4.1): the pairs are the off-diagonal cells (source ≠ target)
of the α matrix, each cell's α for sufficient signals paired with its α for complete
signals; a cell lacking either kind is left out. One test per (task, dataset, parameter
set), and one over every cell of the warehouse ("all").
"""

from __future__ import annotations

import math

import altair as alt
import duckdb
import polars as pl
from scipy import stats

from sigwarehouse.analyses.common import groups, no_signals_message, query
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Sufficient vs complete transferability"
LEVEL = 0.05
INTRO = (
    "Each off-diagonal cell (source model ≠ target model) gives a pair: its α for "
    "sufficient signals and its α for complete signals. A paired two-sided t-test "
    "(`scipy.stats.ttest_rel`, complete − sufficient) asks whether the mean difference is "
    f"zero; `reject` is p < {LEVEL}. A cell's complete α is over the clips that have a "
    "complete mask, its sufficient α over all explained clips; cells without complete "
    "signals are left out."
)


def pairs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, dataset, params_hash, source_model, target_model, sufficient, complete."""
    return query(
        con,
        """
        SELECT task, dataset, params_hash, source_model, target_model,
               max(alpha) FILTER (kind = 'sufficient')::DOUBLE AS sufficient,
               max(alpha) FILTER (kind = 'complete')::DOUBLE AS complete
        FROM alpha_transferability
        WHERE source_model <> target_model
        GROUP BY ALL
        HAVING sufficient IS NOT NULL AND complete IS NOT NULL
        ORDER BY ALL
        """,
    )


def paired_test(sufficient: list[float], complete: list[float]) -> dict:
    """n_pairs, the two means, mean_diff (complete − sufficient), t, p and reject.

    t and p are None with fewer than two pairs, or NaN when every difference is equal
    (scipy's answer for a zero-variance difference).
    """
    n = len(sufficient)
    row = {
        "n_pairs": n,
        "mean_sufficient": sum(sufficient) / n if n else None,
        "mean_complete": sum(complete) / n if n else None,
        "mean_diff": (sum(complete) - sum(sufficient)) / n if n else None,
        "t": None,
        "p": None,
        "reject": None,
    }
    if n >= 2:
        result = stats.ttest_rel(complete, sufficient)
        row["t"], row["p"] = float(result.statistic), float(result.pvalue)
        row["reject"] = None if math.isnan(row["p"]) else row["p"] < LEVEL
    return row


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """One test per group plus one over all cells, and a sufficient-vs-complete scatter."""
    section = Section("sufficient_vs_complete", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = pairs(con)
    if frame.is_empty():
        section.missing = (
            "No off-diagonal cell has both sufficient and complete signals (complete "
            "masks exist only where the model's decision has a δ-complete explanation)."
        )
        return section
    rows = []
    for task, dataset, params_hash, _label, g in groups(frame):
        test = paired_test(g["sufficient"].to_list(), g["complete"].to_list())
        rows.append({"task": task, "dataset": dataset, "params_hash": params_hash, **test})
    everything = paired_test(frame["sufficient"].to_list(), frame["complete"].to_list())
    rows.append({"task": "all", "dataset": "all", "params_hash": "all", **everything})
    section.tables.append(
        Table("ttest", "Paired t-test of α, complete vs sufficient, per group.", pl.DataFrame(rows))
    )
    section.tables.append(
        Table("ttest_pairs", "The pairs tested (CSV only).", frame, in_page=False)
    )
    points = (
        alt.Chart(frame)
        .mark_point(filled=True)
        .encode(
            x=alt.X(
                "sufficient:Q", title="α of sufficient signals", scale=alt.Scale(domain=[0, 1])
            ),
            y=alt.Y("complete:Q", title="α of complete signals", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("task:N"),
            shape=alt.Shape("dataset:N"),
            tooltip=["task", "dataset", "source_model", "target_model", "sufficient", "complete"],
        )
    )
    diagonal = (
        alt.Chart(pl.DataFrame({"a": [0.0, 1.0]}))
        .mark_line(color="grey", strokeDash=[4, 4])
        .encode(x="a:Q", y="a:Q")
    )
    section.charts.append(
        Chart(
            "sufficient_vs_complete",
            "Each off-diagonal cell: points above the dashed line transfer better when complete.",
            (diagonal + points).properties(width=320, height=320),
        )
    )
    return section
