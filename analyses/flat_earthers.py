"""Flat-earthers: models whose signals others reject and which reject others' signals,
named only when an interval over clips says so.

The paper's rule (view `flat_earthers`): a model's avg_out (mean α of its signals on the
others) and avg_in (mean α of the others' signals on it) both lie more than a margin
below the mean of the other models'. Those means come from the same clips, so the call
is only as sure as the clips are many. Here DuckDB gives, per clip and model, the share
of the model's signal's targets that accept it (`out`) and the share of the other
models' signals of the clip that it accepts (`in`); per clip, a model's gap is its share
minus the mean of the other models' on that clip, and the gap is the mean over clips
with its bootstrap interval over clips (analyses.inference). (Where every model
explained every clip, the mean over clips equals the view's gap.) A model is named a
flat-earther when both intervals lie below −margin, from at least
MIN_CLIPS["flat-earther gap"] clips. The view's figures, over all and over non-empty
signals (empty masks are silence), are in the CSV and in each named model's note.
"""

from __future__ import annotations

import altair as alt
import duckdb
import numpy as np
import polars as pl

from sigwarehouse.analyses.common import (
    NO_CROSS_MODEL,
    clip_ranges,
    groups,
    no_signals_message,
    query,
    slug,
)
from sigwarehouse.analyses.inference import (
    LEVEL,
    MIN_CLIPS,
    illustrative,
    mean_interval,
    not_tested,
    untested,
)
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Flat-earthers"
MARGIN = 0.1  # the margin of the `flat_earthers` view, the report's default
INTRO = (
    "The paper calls a model a flat-earther when its signals are rarely accepted by the "
    "other models and it rarely accepts theirs: `avg_out` (how often the others accept "
    "its signals) and `avg_in` (how often it accepts theirs) both lie more than a margin "
    f"({MARGIN}) below the other models' of the same task, dataset and kind (view "
    "`flat_earthers`, `flat_earthers_at(margin)` for another margin). Here each figure "
    "is computed per clip and averaged over clips, and `gap_out`, `gap_in` (the model's "
    f"share minus its peers' on the same clip) come with {LEVEL:.0%} bootstrap intervals "
    "over clips. A model is named a flat-earther only when both intervals lie below "
    f"−{MARGIN}, from at least {MIN_CLIPS['flat-earther gap']} clips. The view's own "
    "figures, over all and over non-empty signals (an empty mask is silence), are in the "
    "CSV `flat_earthers_view`."
)
VIEW_COLUMNS = (
    "task, dataset, params_hash, kind, model, avg_out, avg_in, peers_out, peers_in, gap_out, "
    "gap_in, flat_earther, n_signals, n_empty, avg_out_nonempty, avg_in_nonempty, "
    "gap_out_nonempty, gap_in_nonempty"
)

# The groups of the clip-level figures, from the per-cell counts (a few rows per cell).
_GROUPS_SQL = """
SELECT DISTINCT task, dataset, params_hash, kind FROM alpha_transferability
WHERE kind IN ('sufficient', 'complete') AND source_model <> target_model
ORDER BY ALL
"""
# A group's models: its task's, numbered in name order (the shown parameter set's).
_MEMBERS_SQL = """
SELECT m.model
FROM models AS m JOIN parameter_sets AS p ON p.task = m.task AND p.shown
WHERE m.task = $task AND p.params_hash = $params_hash
ORDER BY m.model
"""
# One group's per-clip shares: per clip and model, the share of the model's signal's
# targets that accept it (out) and of the other models' signals of the clip that it
# accepts (in); exact sums of 0/1 over their counts, as avg() over the signals gave them.
# A query per group and range of clips (common.clip_ranges), with models as numbers:
# DuckDB's hash tables hold a range of one group's clips at a time, keyed by two integers.
_PER_CLIP_SQL = (
    """
WITH members AS (
    SELECT model, (row_number() OVER (ORDER BY model) - 1)::SMALLINT AS number
    FROM ("""
    + _MEMBERS_SQL
    + """)
),
group_signals AS (
    SELECT s.clip_id, a.number AS source, b.number AS target,
           (s.top1 = s.source_class)::INTEGER AS accepted
    FROM signal_probs AS s
    JOIN members AS a ON a.model = s.source_model
    JOIN members AS b ON b.model = s.target_model
    SEMI JOIN clips AS c ON c.clip_id = s.clip_id AND c.dataset = $dataset
    WHERE s.params_hash = $params_hash AND s.kind = $kind AND s.source_model <> s.target_model
      AND s.clip_id BETWEEN $first AND $last
),
outgoing AS (
    SELECT clip_id, source AS model, sum(accepted) / count(*) AS out_share
    FROM group_signals GROUP BY ALL
),
incoming AS (
    SELECT clip_id, target AS model, sum(accepted) / count(*) AS in_share
    FROM group_signals GROUP BY ALL
)
SELECT clip_id, model, out_share::DOUBLE AS out_share, in_share::DOUBLE AS in_share
FROM outgoing FULL JOIN incoming USING (clip_id, model)
ORDER BY clip_id, model
"""
)


def per_clip(
    con: duckdb.DuckDBPyConnection, task: str, dataset: str, params_hash: str, kind: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One group's per-clip shares: its models (sorted) and two (clips × models) matrices,
    out_share and in_share, with a row per clip in clip order (NaN where the model has no
    signal of the clip, or accepts none of the clip's)."""
    params = {"task": task, "dataset": dataset, "params_hash": params_hash, "kind": kind}
    members = [
        m
        for (m,) in con.execute(_MEMBERS_SQL, {"task": task, "params_hash": params_hash}).fetchall()
    ]
    parts = [
        con.execute(_PER_CLIP_SQL, {**params, "first": first, "last": last}).fetchnumpy()
        for first, last in clip_ranges(con, dataset)
    ]
    rows = {
        name: np.concatenate([np.ma.filled(p[name].astype(dtype), fill) for p in parts])
        if parts
        else np.array([], dtype)
        for name, dtype, fill in (
            ("clip_id", np.int64, 0),
            ("model", np.int64, 0),
            ("out_share", np.float64, np.nan),
            ("in_share", np.float64, np.nan),
        )
    }  # fmt: skip  (a share is NULL, masked, where the model has none: NaN)
    present, column = np.unique(rows["model"], return_inverse=True)
    _, row = np.unique(rows["clip_id"], return_inverse=True)
    matrices = []
    for name in ("out_share", "in_share"):
        # column-major, as a frame's to_numpy() gave it: numpy sums its rows in that order
        matrix = np.full((row.max(initial=-1) + 1, len(present)), np.nan, order="F")
        matrix[row, column] = rows[name]
        matrices.append(matrix)
    return [members[i] for i in present], matrices[0], matrices[1]


def clip_gaps(shares: np.ndarray) -> np.ndarray:
    """For a (clips × models) matrix of shares (NaN: none), each model's share minus the
    mean of the other models' on the same clip (NaN where either is missing)."""
    present = ~np.isnan(shares)
    values = np.where(present, shares, 0.0)
    others_n = present.sum(axis=1, keepdims=True) - present
    others_sum = values.sum(axis=1, keepdims=True) - values
    with np.errstate(invalid="ignore", divide="ignore"):
        peers = np.where(others_n > 0, others_sum / others_n, np.nan)
    return shares - peers


def _estimate(gaps: np.ndarray) -> tuple[int, float | None, float | None, float | None, str | None]:
    """(n_clips, mean, lo, hi, note) of one model's per-clip gaps (NaN left out); no
    interval below the minimum number of clips."""
    g = gaps[~np.isnan(gaps)]
    if g.size == 0:
        return 0, None, None, None, None
    if not_tested("flat-earther gap", g.size):
        return g.size, float(g.mean()), None, None, None
    lo, hi, note = mean_interval(g)
    return g.size, float(g.mean()), (None if note else lo), (None if note else hi), note


def gaps(con: duckdb.DuckDBPyConnection, margin: float = MARGIN) -> pl.DataFrame:
    """One row per (task, dataset, params_hash, kind, model): n_clips, avg_out, avg_in,
    gap_out with gap_out_lo/hi, gap_in with gap_in_lo/hi, flat_earther (named: enough
    clips and both intervals below −margin) and verdict."""
    out = []
    keys = ["task", "dataset", "params_hash", "kind"]
    for key in con.execute(_GROUPS_SQL).fetchall():
        models, out_share, in_share = per_clip(con, *key)
        if not models:
            continue
        shares = {"out_share": out_share, "in_share": in_share}
        gap = {c: clip_gaps(m) for c, m in shares.items()}
        for j, model in enumerate(models):
            n_out, g_out, out_lo, out_hi, out_note = _estimate(gap["out_share"][:, j])
            n_in, g_in, in_lo, in_hi, in_note = _estimate(gap["in_share"][:, j])
            n = min(n_out, n_in)
            verdict = not_tested("flat-earther gap", n)
            named = False
            if verdict:  # too few clips on one side: no interval on either
                out_lo = out_hi = in_lo = in_hi = None
            else:
                named = (out_hi is not None and out_hi < -margin
                         and in_hi is not None and in_hi < -margin)  # fmt: skip
                verdict = "flat-earther" if named else "not shown to be one"
                notes = [f"{w}: {note}" for w, note in (("out", out_note), ("in", in_note)) if note]
                verdict += "; no interval " + ", ".join(notes) if notes else ""
            out.append((*key, model, n,
                        float(np.nanmean(shares["out_share"][:, j])) if n_out else None,
                        float(np.nanmean(shares["in_share"][:, j])) if n_in else None,
                        g_out, out_lo, out_hi, g_in, in_lo, in_hi, named, verdict))  # fmt: skip
    text, real = pl.String, pl.Float64
    schema = {
        **dict.fromkeys([*keys, "model"], text), "n_clips": pl.Int64,
        **dict.fromkeys(["avg_out", "avg_in", "gap_out", "gap_out_lo", "gap_out_hi", "gap_in",
                         "gap_in_lo", "gap_in_hi"], real),
        "flat_earther": pl.Boolean, "verdict": text,
    }  # fmt: skip
    return pl.DataFrame(out, schema=schema, orient="row")


def flagged_note(row: dict, view_row: dict | None, margin: float) -> str:
    """The sentence naming a flat-earther with its intervals, and what its non-empty
    signals say (from the view's row, when there is one)."""
    text = (
        f"{row['model']} is a flat-earther on {row['task']} / {row['dataset']} "
        f"({row['kind']} signals, margin {margin}, {row['n_clips']} clips): gap_out "
        f"{row['gap_out']:+.2f} [{row['gap_out_lo']:+.2f}, {row['gap_out_hi']:+.2f}], gap_in "
        f"{row['gap_in']:+.2f} [{row['gap_in_lo']:+.2f}, {row['gap_in_hi']:+.2f}] "
        f"({LEVEL:.0%} intervals over clips)."
    )
    if view_row is None:
        return text
    out, inn = view_row["gap_out_nonempty"], view_row["gap_in_nonempty"]
    if view_row["n_empty"]:
        text += f" {view_row['n_empty']} of its {view_row['n_signals']} signals are empty."
    if out is not None and inn is not None:
        holds = out < -margin and inn < -margin
        text += (
            f" Over non-empty signals its gaps (the view's) are {out:+.2f} (out) and "
            f"{inn:+.2f} (in): the point call {'holds' if holds else 'does not hold'} "
            "without silence."
        )
    return text


def run(con: duckdb.DuckDBPyConnection, margin: float = MARGIN) -> Section:
    """Every model's gaps with their intervals, a note naming each flat-earther, the
    view's rows (CSV), and an avg_out/avg_in scatter per group."""
    section = Section("flat_earthers", TITLE, INTRO)
    section.missing = no_signals_message(con)
    if section.missing:
        return section
    view = query(
        con,
        f"SELECT {VIEW_COLUMNS} FROM flat_earthers_at(?) ORDER BY task, dataset, kind, model",
        [margin],
    )
    frame = gaps(con, margin)
    if view.is_empty() or frame.is_empty():
        section.missing = NO_CROSS_MODEL
        return section
    section.tables.append(
        Table("flat_earthers", f"Every model, with its gaps and their {LEVEL:.0%} intervals "
              "over clips.", frame)
    )  # fmt: skip
    section.tables.append(
        Table("flat_earthers_view", f"View flat_earthers_at({margin}): the paper's point "
              "rule, over all and over non-empty signals (CSV only).", view, in_page=False)
    )  # fmt: skip
    reasons = []
    for (task, dataset, kind), rows in frame.group_by(
        "task", "dataset", "kind", maintain_order=True
    ):
        below = rows.filter(pl.col("n_clips") < MIN_CLIPS["flat-earther gap"])["n_clips"]
        if below.len():
            label = f"{task} / {dataset} ({kind} signals)"
            reasons.append(untested(label, "flat-earther gap", below.to_list(), rows.height))
    if reasons:
        section.below_minimum.append(illustrative(TITLE, reasons))
    flagged = frame.filter(pl.col("flat_earther"))
    if flagged.is_empty():
        section.notes.append(
            f"No model is named a flat-earther at margin {margin}: none has both intervals "
            f"below −{margin} from at least {MIN_CLIPS['flat-earther gap']} clips."
        )
    view_rows = {
        (r["task"], r["dataset"], r["params_hash"], r["kind"], r["model"]): r
        for r in view.iter_rows(named=True)
    }
    for row in flagged.iter_rows(named=True):
        key = (row["task"], row["dataset"], row["params_hash"], row["kind"], row["model"])
        section.notes.append(flagged_note(row, view_rows.get(key), margin))
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
            tooltip=[
                "model",
                "kind",
                "n_clips",
                "avg_out",
                "avg_in",
                "gap_out",
                "gap_out_lo",
                "gap_out_hi",
                "gap_in",
                "gap_in_lo",
                "gap_in_hi",
                "verdict",
            ],  # fmt: skip
        )
        names = base.mark_text(dx=8, align="left", fontSize=10).encode(text="model:N")
        section.charts.append(
            Chart(
                slug("flat_earthers", task, dataset, params_hash),
                f"{label}: a flat-earther sits low and to the left of its peers (red: named, "
                "its intervals below the margin).",
                (points + names).properties(width=260, height=260, title=label),
            )
        )
    return section
