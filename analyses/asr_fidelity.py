"""ASR fidelity of derived signals (the paper's section 5.4, table 5).

Each transcript of a sufficient, complete or inverse signal (stored by `sigwh asr`) is
compared with the transcript of the original clip by the same ASR model: the Levenshtein
ratio as python-Levenshtein's `ratio` and rapidfuzz's `fuzz.ratio` / 100 define it, the
normalised indel similarity 1 − indel(a, b) / (|a| + |b|) over characters, where indel
counts the insertions and deletions that turn a into b (a substitution costs 2; 1 when
both are empty). It is computed by rapidfuzz's `Indel.normalized_similarity`, after both
transcripts are normalised (lower case, punctuation other than apostrophes removed,
whitespace collapsed). Not 1 − Levenshtein distance / max length: that figure is another
one, lower for the same pair (kitten/sitting: 0.571 against 0.615). STOI of
each signal against its original (table `signal_stoi`) is listed with it. Signals are
grouped by the class their source model gave the clip.
"""

from __future__ import annotations

import re

import altair as alt
import duckdb
import polars as pl
from rapidfuzz.distance import Indel

from sigwarehouse.analyses.common import count, has_relations, query, slug
from sigwarehouse.report.sections import Chart, Section, Table
from sigwarehouse.signals import SIGNAL_KINDS as KINDS

TITLE = "ASR fidelity of sufficient, complete and inverse signals"
INTRO = (
    "An offline ASR model (`sigwh asr`, pocketsphinx by default) transcribes each clip and "
    "each model's sufficient, complete and inverse signals of it. `lev_ratio_indel` is the "
    "Levenshtein ratio (indel) of a signal's transcript to the original's: "
    "1 − indel distance / (sum of the two lengths), over characters after lower-casing and "
    "removing punctuation, as python-Levenshtein's `ratio` (1 = identical, 0 = nothing "
    "in common); `stoi` is the short-time "
    "objective intelligibility of the signal against the original (pystoi). The wide "
    "table follows the paper's table 5: mean ratio of sufficient and complete signals and "
    "mean STOI of inverse signals, by the class the model gave."
)


def normalise(text: str) -> str:
    """Lower case, punctuation (except apostrophes) removed, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def lev_ratio(original: str, other: str) -> float:
    """The Levenshtein ratio (normalised indel similarity) of two normalised transcripts:
    1 − indel distance / (|a| + |b|); 1.0 for two empty ones."""
    return float(Indel.normalized_similarity(normalise(original), normalise(other)))


def signal_scores(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per transcribed signal: asr, task, dataset, params_hash, model, clip_id,
    class, kind, original, text, lev_ratio_indel, stoi."""
    frame = query(
        con,
        """
        SELECT s.asr, m.task, c.dataset, s.params_hash, s.source_model AS model, s.clip_id,
               tk.labels[e.orig_class + 1] AS class, s.kind, o.text AS original, s.text,
               st.stoi
        FROM transcripts AS s
        JOIN transcripts AS o
          ON o.asr = s.asr AND o.clip_id = s.clip_id AND o.kind = 'original'
        JOIN explanations AS e
          ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
        JOIN clips AS c ON c.clip_id = s.clip_id
        JOIN models AS m ON m.model = s.source_model
        JOIN tasks AS tk ON tk.task = m.task
        LEFT JOIN signal_stoi AS st
          ON st.source_model = s.source_model AND st.clip_id = s.clip_id
         AND st.params_hash = s.params_hash AND st.kind = s.kind
        WHERE s.kind <> 'original'
        ORDER BY ALL
        """,
    )
    if frame.is_empty():
        return frame
    ratios = [lev_ratio(a, b) for a, b in zip(frame["original"], frame["text"], strict=True)]
    return frame.with_columns(lev_ratio_indel=pl.Series(ratios, dtype=pl.Float64))


def summary(scores: pl.DataFrame) -> pl.DataFrame:
    """Mean ratio and STOI per (asr, task, dataset, params_hash, model, kind, class)."""
    keys = ["asr", "task", "dataset", "params_hash", "model", "kind", "class"]
    return (
        scores.group_by(keys)
        .agg(
            n=pl.len(),
            lev_ratio_indel=pl.col("lev_ratio_indel").mean(),
            stoi=pl.col("stoi").mean(),
            empty_transcripts=(pl.col("text") == "").sum(),
        )
        .sort(keys)
    )


def table5(means: pl.DataFrame, labels: list[str]) -> pl.DataFrame:
    """The paper's layout: a row per model; Levenshtein ratio (indel) of sufficient and
    complete signals, STOI of inverse signals, one column per class (e.g. `sufficient real`)."""
    parts = []
    for kind, value in (
        ("sufficient", "lev_ratio_indel"),
        ("complete", "lev_ratio_indel"),
        ("inverse", "stoi"),
    ):
        part = means.filter(pl.col("kind") == kind).select(
            "model", (pl.lit(f"{kind} ") + pl.col("class")).alias("column"), pl.col(value)
        )
        parts.append(part.rename({value: "value"}))
    long = pl.concat(parts)
    wide = long.pivot(on="column", index="model", values="value").sort("model")
    order = [f"{k} {c}" for k in KINDS for c in labels]
    return wide.select("model", *[c for c in order if c in wide.columns])


# The report section below is presentation, outside the mutation scope (`make mutation`).
# pragma: no mutate block
def run(con: duckdb.DuckDBPyConnection) -> Section:
    """Table 5 per (ASR model, task, dataset, parameter set), the long summary, a chart."""
    section = Section("asr_fidelity", TITLE, INTRO)
    if not has_relations(con, "transcripts") or count(con, "transcripts") == 0:
        section.missing = (
            "No transcripts are stored yet: run `sigwh asr` (pocketsphinx, offline) after "
            "`sigwh ingest`."
        )
        return section
    scores = signal_scores(con)
    if scores.is_empty():
        section.missing = "Transcripts are stored, but none of a derived signal with its original."
        return section
    labels_of = {t: list(ls) for t, ls in con.execute("SELECT task, labels FROM tasks").fetchall()}
    means = summary(scores)
    section.tables.append(
        Table("asr_transcripts",
              "Every transcript with its Levenshtein ratio (indel) and STOI (CSV only).",
              scores, in_page=False)
    )  # fmt: skip
    keys = ["asr", "task", "dataset", "params_hash"]
    for key, g in sorted(means.group_by(keys, maintain_order=True), key=lambda x: x[0]):
        asr, task, dataset, ph = key
        group = f"{task} / {dataset}, ASR {asr}"
        if means.select("params_hash").n_unique() > 1:
            group += f" (parameters {ph})"
        section.tables.append(
            Table(
                slug("asr_table5", asr, task, dataset, ph),
                "Levenshtein ratio (indel) of sufficient and complete signals, STOI of inverse "
                "signals (the paper's table 5).",
                table5(g, labels_of[task]),
                group=group,
            )
        )
        section.tables.append(
            Table(
                slug("asr_fidelity", asr, task, dataset, ph),
                "Mean Levenshtein ratio (indel) and STOI per model, kind and class; `n` counts "
                "the clips (one signal each).",
                g.drop(*keys),
                group=group,
            )
        )
        chart = (
            alt.Chart(g)
            .mark_point(filled=True, size=60)
            .encode(
                x=alt.X("stoi:Q", title="mean STOI", scale=alt.Scale(domain=[0, 1])),
                y=alt.Y(
                    "lev_ratio_indel:Q",
                    title="mean Levenshtein ratio (indel)",
                    scale=alt.Scale(domain=[0, 1]),
                ),
                color=alt.Color("kind:N", sort=list(KINDS)),
                shape=alt.Shape("class:N"),
                tooltip=["model", "kind", "class", "n", "lev_ratio_indel", "stoi"],
            )  # fmt: skip
            .properties(width=300, height=240)
        )
        section.charts.append(
            Chart(
                slug("asr_fidelity", asr, task, dataset, ph),
                "Each point: one model's signals of one kind and class.",
                chart,
                group=group,
            )
        )
    empty = scores.filter(pl.col("original").map_elements(normalise, return_dtype=pl.Utf8) == "")
    if empty.height:
        section.notes.append(
            f"{empty['clip_id'].n_unique()} original clip(s) have an empty transcript: their "
            "signals score 1 only when their transcript is empty too."
        )
    return section
