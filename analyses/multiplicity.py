"""How many ways does a model recognise a clip? Several disjoint sufficient explanations.

With freqrex's `n_sufficient = K`, ingestion stores up to K pairwise-disjoint sufficient
masks per clip (rank 1 is the usual one). This section shows how many each clip has
(view `explanation_multiplicity`), whether a model's second or third piece of evidence
transfers to other models like its first (view `alpha_by_rank`), and lets you listen to
one clip's disjoint sufficient signals side by side.
"""

from __future__ import annotations

import json

import altair as alt
import duckdb
import polars as pl

from sigwarehouse.analyses.common import has_relations, query, slug, unpack_mask
from sigwarehouse.audio import ClipLoadError, load_clip, wav_bytes
from sigwarehouse.report.sections import Audio, Chart, Section, Table
from sigwarehouse.signals import masked_signal

TITLE = "How many ways does a model recognise a clip?"
SHORT_TITLE = "Several sufficiencies"
INTRO = (
    "Explanations made with freqrex's `n_sufficient = K` (`sigwh ingest --param "
    "n_sufficient=K`) keep up to K sufficient masks per clip, pairwise disjoint: rank 1 is "
    "the first found, rank 2 the best among the bins rank 1 left, and so on; each alone "
    "keeps the model's class (verified before storing). `multiplicity` is how many a clip "
    "has. α by rank is the share of a model's rank-r sufficient signals that another model "
    "gives the same class (mean over the other models of the task); rank 1 is the α of "
    "the transferability section."
)
EXAMPLES = 2  # clips whose disjoint sufficient signals are made listenable


def alpha_by_rank(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, dataset, params_hash, source_model, rank, n_signals, alpha: the mean α of the
    source's rank-r signals over the other models of its task (shown parameter sets)."""
    return query(
        con,
        """
        SELECT task, dataset, params_hash, source_model, rank,
               max(n_signals) AS n_signals, avg(alpha)::DOUBLE AS alpha
        FROM alpha_by_rank WHERE source_model <> target_model
        GROUP BY ALL ORDER BY ALL
        """,
    )


def _listenable(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> list[Audio]:
    """Each rank's signal of the EXAMPLES clips with the most disjoint masks."""
    rows = con.execute(
        f"""
        SELECT e.model, e.clip_id, e.params_hash, e.n_bins, e.sufficient_mask, t.sample_rate,
               list(r.mask ORDER BY r.rank), p.params
        FROM explanations AS e
        JOIN sufficient_ranks AS r USING (model, clip_id, params_hash)
        JOIN models AS m ON m.model = e.model JOIN tasks AS t ON t.task = m.task
        LEFT JOIN freqrex_params AS p ON p.params_hash = e.params_hash
        WHERE e.sufficient_mask IS NOT NULL
        GROUP BY ALL ORDER BY count(*) DESC, e.model, e.clip_id LIMIT {EXAMPLES}
        """
    ).fetchall()
    out = []
    for model, clip_id, ph, n_bins, first, rate, further, params in rows:
        stored = json.loads(params) if params else None
        try:
            samples = load_clip(con, clip_id)
        except ClipLoadError:
            continue
        for rank, blob in enumerate([first, *further], start=1):
            mask = unpack_mask(blob, n_bins)
            out.append(
                Audio(
                    slug("sufficient_rank", model, str(clip_id), ph, str(rank)),
                    f"{model}, clip {clip_id}: sufficient signal of rank {rank} "
                    f"({int(mask.sum())} of {n_bins} bins)",
                    wav_bytes(masked_signal(samples, mask, stored), rate),
                    group=f"clip {clip_id} on {model}",
                )
            )
    return out


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The multiplicity table and chart, α by rank, and listenable disjoint signals.
    `missing` is set when no explanation asked for more than one sufficient mask."""
    section = Section("multiplicity", TITLE, INTRO, short_title=SHORT_TITLE)
    if not has_relations(con, "explanation_multiplicity", "alpha_by_rank", "sufficient_ranks"):
        section.missing = "This warehouse lacks the views of this section; run `sigwh migrate`."
        return section
    frame = query(con, "SELECT * FROM explanation_multiplicity WHERE n_sufficient > 1 ORDER BY ALL")
    if frame.is_empty():
        section.missing = (
            "No explanation asked for several sufficient masks: run `sigwh ingest --model M "
            "--param n_sufficient=3` (a parameter set of its own)."
        )
        return section
    section.tables.append(
        Table("multiplicity", "Clips by number of disjoint sufficient masks.", frame)
    )
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("model:N", title=None),
            y=alt.Y("sum(n_clips):Q", title="clips"),
            color=alt.Color("multiplicity:O", title="disjoint sufficient masks"),
            column=alt.Column("task:N", title=None),
            tooltip=["task", "model", "class", "multiplicity", "n_clips", "median_size"],
        )
        .resolve_scale(x="independent")
        .properties(width=alt.Step(28), height=160)
    )
    section.charts.append(
        Chart("multiplicity", "How many disjoint sufficient masks each model's clips have.", bars)
    )
    by_rank = alpha_by_rank(con)
    if by_rank.is_empty():
        section.notes.append("No rank's signals have been evaluated on another model yet.")
    else:
        section.tables.append(
            Table("alpha_by_rank", "Mean α over the other models, by rank.", by_rank)
        )
        lines = (
            alt.Chart(by_rank)
            .mark_line(point=True)
            .encode(
                x=alt.X("rank:O"),
                y=alt.Y("alpha:Q", title="mean α", scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("source_model:N", title="model"),
                column=alt.Column("task:N", title=None),
                tooltip=["task", "dataset", "source_model", "rank", "n_signals", "alpha"],
            )
            .properties(width=180, height=160)
        )
        section.charts.append(
            Chart("alpha_by_rank", "Does a later piece of evidence transfer as well?", lines)
        )
    section.audio += _listenable(con, frame)
    return section
