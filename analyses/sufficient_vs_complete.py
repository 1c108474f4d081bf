"""Are complete signals more transferable than sufficient ones? A paired test over clips.

The paper (section 4.1) pairs the off-diagonal cells of the α matrix and runs a t-test on
them; but the cells of a matrix are computed from the same clips, so they are not
independent pairs (20 cells of 5 clips gave p = 0.0004). Here the clip is the unit: for
each clip, DuckDB averages, over the (source model, target model ≠ source) pairs where
the clip has both a sufficient and a complete signal, whether the target accepts each
(its top-1 is the source's class). That gives one (sufficient, complete) pair of shares
per clip; the test is a sign-flip permutation test of the mean per-clip difference
(complete − sufficient) with a bootstrap interval over clips (analyses.inference),
one per (task, dataset, parameter set) and one over every clip ("all"). Below
MIN_CLIPS["paired difference"] clips a group is not tested, and says so.
"""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import (
    ACCEPTED_SIGNALS,
    chart_sample,
    clip_ranges,
    groups,
    no_signals_message,
    query,
)
from sigwarehouse.analyses.inference import (
    LEVEL,
    MIN_CLIPS,
    SIGNIFICANCE,
    illustrative,
    paired_difference,
)
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Sufficient vs complete transferability"
INTRO = (
    "For each clip, the share of its (source model, other model) pairs in which the other "
    "model accepts the source's sufficient signal, and the same share for its complete "
    "signal, over the pairs where the clip has both (a clip without a complete mask for "
    "a source is left out for that source). Clips are the independent units: the test is "
    "a two-sided sign-flip permutation test (`scipy.stats.permutation_test`) of the mean "
    f"per-clip difference complete − sufficient, `reject` is p < {SIGNIFICANCE}, and "
    f"`lo`, `hi` its {LEVEL:.0%} bootstrap interval over clips. A group with fewer than "
    f"{MIN_CLIPS['paired difference']} clips is not tested. (The paper's t-test on the "
    "cells of the α matrix treats cells computed from the same clips as independent.)"
)

# Shares are exact sums of 0/1 over pairs divided by their count, as avg() over the
# pairs gave them; the clip's task is its source models' (every model of a task
# explains the task's clips), its dataset the clip's. One query per range of clips
# (common.clip_ranges): a clip's pairs are all in its range.
_PER_CLIP_SQL = f"""
WITH {ACCEPTED_SIGNALS},
in_range AS (SELECT * FROM signals WHERE clip_id BETWEEN $first AND $last),
pairs AS (
    SELECT params_hash, clip_id, source_model, target_model,
           max(accepted) FILTER (WHERE kind = 'sufficient') AS sufficient,
           max(accepted) FILTER (WHERE kind = 'complete') AS complete
    FROM in_range
    GROUP BY ALL
    HAVING sufficient IS NOT NULL AND complete IS NOT NULL
),
per_source AS (
    SELECT params_hash, clip_id, source_model, count(*) AS n_pairs,
           sum(sufficient) AS n_sufficient, sum(complete) AS n_complete
    FROM pairs
    GROUP BY ALL
)
SELECT w.task, c.dataset, w.params_hash, x.clip_id, sum(x.n_pairs)::BIGINT AS n_pairs,
       count(*) AS n_sources, (sum(x.n_sufficient) / sum(x.n_pairs))::DOUBLE AS sufficient,
       (sum(x.n_complete) / sum(x.n_pairs))::DOUBLE AS complete
FROM per_source AS x
JOIN shown AS w ON w.model = x.source_model AND w.params_hash = x.params_hash
JOIN clips AS c ON c.clip_id = x.clip_id
GROUP BY ALL
"""


def per_clip(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, dataset, params_hash, clip_id, n_pairs, n_sources, sufficient, complete: one
    row per clip with both kinds of signal for some source (the shares described above),
    sorted by task, dataset, params_hash and clip."""
    parts = [
        query(con, _PER_CLIP_SQL, {"first": first, "last": last})
        for first, last in clip_ranges(con)
    ]
    if not parts:
        return query(con, _PER_CLIP_SQL, {"first": 0, "last": -1})  # the columns, no row
    return pl.concat(parts).sort("task", "dataset", "params_hash", "clip_id")


def paired_test(rows: pl.DataFrame) -> dict:
    """The test of one set of per-clip rows: n_clips, n_pairs, mean_sufficient,
    mean_complete, mean_diff, lo, hi, p, reject, verdict."""
    test = paired_difference(rows["sufficient"].to_numpy(), rows["complete"].to_numpy())
    return {
        "n_clips": test["n_clips"],
        "n_pairs": int(rows["n_pairs"].sum()),
        "mean_sufficient": test["mean_first"],
        "mean_complete": test["mean_second"],
        **{k: test[k] for k in ("mean_diff", "lo", "hi", "p", "reject", "verdict")},
    }


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """One test per group plus one over all clips, and a per-clip scatter."""
    section = Section("sufficient_vs_complete", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = per_clip(con)
    if frame.is_empty():
        section.missing = (
            "No clip has both a sufficient and a complete signal evaluated on another model "
            "(complete masks exist only where the model's decision has a δ-complete "
            "explanation)."
        )
        return section
    rows = []
    for task, dataset, params_hash, _label, g in groups(frame):
        rows.append({"task": task, "dataset": dataset, "params_hash": params_hash,
                     **paired_test(g)})  # fmt: skip
    rows.append({"task": "all", "dataset": "all", "params_hash": "all", **paired_test(frame)})
    tests = pl.DataFrame(rows)
    reasons = [
        ("all clips" if r["task"] == "all" else f"{r['task']} / {r['dataset']}")
        + f", {r['verdict']}"
        for r in rows
        if r["p"] is None
    ]
    if reasons:
        section.below_minimum.append(illustrative(TITLE, reasons))
    section.tables.append(
        Table("paired_test", "Paired test over clips of the share of accepted signals, "
              "complete vs sufficient, per group.", tests)
    )  # fmt: skip
    section.tables.append(
        Table("paired_clips", "The per-clip shares tested (CSV only).", frame, in_page=False)
    )
    drawn, sampled = chart_sample(frame, "clips")
    points = (
        alt.Chart(drawn)
        .mark_point(filled=True, opacity=0.6)
        .encode(
            x=alt.X("sufficient:Q", title="share accepted, sufficient signals",
                    scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("complete:Q", title="share accepted, complete signals",
                    scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("task:N"),
            shape=alt.Shape("dataset:N"),
            tooltip=["task", "dataset", "clip_id", "n_pairs", "sufficient", "complete"],
        )
    )  # fmt: skip
    diagonal = (
        alt.Chart(pl.DataFrame({"a": [0.0, 1.0]}))
        .mark_line(color="grey", strokeDash=[4, 4])
        .encode(x="a:Q", y="a:Q")
    )
    section.charts.append(
        Chart(
            "sufficient_vs_complete",
            f"One point per clip ({frame.height} clips): above the dashed line its complete "
            "signals are accepted more often than its sufficient ones." + sampled,
            (diagonal + points).properties(width=320, height=320),
        )
    )
    return section
