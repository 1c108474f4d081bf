"""Label transfer (the paper's section 5.3): does a class's global signature carry its label?

From the `label_transfer` view: the mask of a model's `from` composite (e.g. fake) applied
to the clips the model gives another class (e.g. real), "fake's mask applied to clips
called real"; `share_flipped` is the share that the model then gives the composite's class.
"""

from __future__ import annotations

import altair as alt
import duckdb

from sigwarehouse.analyses.common import count, groups, has_relations, query, slug
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Label transfer"
INTRO = (
    "`sigwh transfer-label --model M --from fake --to real` keeps, in every clip M calls "
    "real, only the frequencies that M's fake composite keeps (its own freqrex sufficient "
    "mask, or with --mask members the union of its members' sufficient masks, mapped by "
    "frequency in Hz), changes nothing else, and asks M again. `share_flipped` is the "
    "share of those clips M then calls fake (view `label_transfer`); `mean_kept_share` is "
    "the share of each clip's bins the mask keeps."
)


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The view per (task, dataset, parameter set), and a bar chart of share_flipped."""
    section = Section("label_transfer", TITLE, INTRO)
    if not has_relations(con, "label_transfer") or count(con, "label_transfers") == 0:
        section.missing = (
            "No label transfers are stored yet: run `sigwh compose --model M`, then "
            "`sigwh transfer-label --model M --from fake --to real`."
        )
        return section
    # "fake's mask applied to clips called real": the composite's class first, then the
    # class of the clips it is applied to (from_class / to_class read backwards).
    frame = query(
        con,
        "SELECT from_class || '''s mask applied to clips called ' || to_class AS transfer, *"
        " FROM label_transfer ORDER BY task, dataset, params_hash, model, from_class,"
        " to_class, mask",
    )
    for task, dataset, ph, label, rows in groups(frame):
        section.tables.append(
            Table(
                slug("label_transfer", task, dataset, ph),
                "Each composite's mask applied to the clips the model gives another class: "
                "the share whose class flips to the composite's.",
                rows.drop("task", "dataset", "params_hash"),
                group=label,
            )
        )
        bars = (
            alt.Chart(rows)
            .mark_bar()
            .encode(
                x=alt.X("model:N", title=None),
                y=alt.Y("share_flipped:Q", title="share flipped", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("mask:N"),
                xOffset="mask:N",
                column=alt.Column("transfer:N", title=None),
                tooltip=[
                    "model",
                    "from_class",
                    "to_class",
                    "mask",
                    "n_clips",
                    "n_flipped",
                    "share_flipped",
                ],
            )  # fmt: skip
            .properties(width=alt.Step(24), height=160)
        )
        section.charts.append(
            Chart(
                slug("label_transfer", task, dataset, ph),
                "Share of the clips each model re-labels when they keep only the frequencies "
                "of the other class's composite (e.g. fake's mask applied to clips called real).",
                bars,
                group=label,
            )
        )
    return section
