"""Flat-earthers: models whose signals others reject and which reject others' signals.

The call is the view's (α over all signals, as the paper). Beside it, the same figures
over non-empty signals: a model whose α rests on silence (empty sufficient masks that
others accept because they give the same class to silence) may look listened to, or
not, for reasons that have nothing to do with what it listens to.
"""

from __future__ import annotations

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import NO_CROSS_MODEL, groups, no_signals_message, query, slug
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Flat-earthers"
MARGIN = 0.1  # the margin of the `flat_earthers` view, the report's default
INTRO = (
    "The paper calls a model a flat-earther when its signals are rarely accepted by the "
    "other models and it rarely accepts theirs. View `flat_earthers` states the rule: "
    "`avg_out` (mean α of the model's signals on the others) and `avg_in` (mean α of the "
    f"others' signals on it) both lie more than {MARGIN} below the mean of the other "
    "models of the same task, dataset and kind (`peers_out`, `peers_in`). `gap_out` and "
    "`gap_in` show how close each call was; `flat_earthers_at(margin)` applies another "
    "margin. `n_empty` of the model's `n_signals` signals are empty (silence: the all-zero "
    "signal keeps the class); `avg_out_nonempty`, `avg_in_nonempty` and their gaps to the "
    "peers repeat the figures over non-empty signals only, to show whether a call rests on "
    "silence."
)
COLUMNS = (
    "task, dataset, params_hash, kind, model, avg_out, avg_in, peers_out, peers_in, gap_out, "
    "gap_in, flat_earther, n_signals, n_empty, avg_out_nonempty, avg_in_nonempty, "
    "gap_out_nonempty, gap_in_nonempty"
)


def flagged_note(row: dict, margin: float) -> str:
    """The sentence naming a flat-earther, with what its non-empty signals say."""
    text = (
        f"{row['model']} is a flat-earther on {row['task']} / {row['dataset']} "
        f"({row['kind']} signals, margin {margin})."
    )
    out, inn = row["gap_out_nonempty"], row["gap_in_nonempty"]
    if row["n_empty"]:
        text += f" {row['n_empty']} of its {row['n_signals']} signals are empty."
    if out is not None and inn is not None:
        holds = out < -margin and inn < -margin
        text += (
            f" Over non-empty signals its gaps are {out:+.2f} (out) and {inn:+.2f} (in): "
            f"the call {'holds' if holds else 'does not hold'} without silence."
        )
    return text


def run(con: duckdb.DuckDBPyConnection, margin: float = MARGIN) -> Section:
    """The rows of `flat_earthers_at(margin)`, a note naming each flagged model, and an
    avg_out/avg_in scatter per group."""
    section = Section("flat_earthers", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    frame = query(
        con,
        f"SELECT {COLUMNS} FROM flat_earthers_at(?) ORDER BY task, dataset, kind, model",
        [margin],
    )
    if frame.is_empty():
        section.missing = NO_CROSS_MODEL
        return section
    section.tables.append(Table("flat_earthers", "Every model, with its gaps.", frame))
    flagged = frame.filter(pl.col("flat_earther"))
    if flagged.is_empty():
        section.notes.append(f"No model is a flat-earther at margin {margin}.")
    section.notes += [flagged_note(row, margin) for row in flagged.iter_rows(named=True)]
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
