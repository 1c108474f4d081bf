"""The silence card: what each model says to signals that carry no evidence.

Where the all-zero signal already gets a clip's class, the clip's sufficient mask keeps
no bin, and every model that gives the same class to silence "accepts" that empty
signal. The card shows, per model, the class and probability it gives the all-zero
signal and white noise at -60 dBFS (table `model_probes`, stored by `sigwh ingest`; see
`sigwarehouse.probes`), at the task's clip length, beside how many of its
sufficient masks are empty. Two models with the same silence class accept each other's
empty signals whatever they listen to.
"""

from __future__ import annotations

import duckdb
import polars as pl

from sigwarehouse.analyses.common import count, has_relations, query
from sigwarehouse.report.sections import Section, Table

TITLE = "Silence card"
INTRO = (
    "What each model says to signals that carry no evidence: the all-zero signal "
    "(`silence`) and white noise at −60 dBFS (RMS 10^(−60/20) of full scale, numpy "
    "default_rng(0)), at the task's clip length (the median of its clips), from table "
    "`model_probes`. Where a clip's class is the model's silence class, the empty signal "
    "may already keep it: its sufficient mask is then empty (`empty_sufficient` of "
    "`explained` clips), and every other model whose silence class is the same accepts "
    "that empty signal. Those acceptances count in α and not in α over non-empty signals."
)

_CARD_SQL = """
WITH answers AS (
    SELECT m.task, p.model, p.n_samples, p.n_samples / t.sample_rate AS seconds, p.probe,
           coalesce(t.labels[p.top1 + 1], 'none (non-finite output)') AS class,
           p.probs[p.top1 + 1]::DOUBLE AS prob
    FROM model_probes AS p
    JOIN models AS m USING (model)
    JOIN tasks AS t ON t.task = m.task
),
explained AS (
    SELECT model, count(*) AS explained,
           count(*) FILTER (WHERE sufficient_size = 0) AS empty_sufficient
    FROM explanations GROUP BY model
)
SELECT a.task, a.model, a.n_samples, a.seconds,
       max(a.class) FILTER (WHERE a.probe = 'silence') AS silence_class,
       max(a.prob) FILTER (WHERE a.probe = 'silence') AS silence_prob,
       max(a.class) FILTER (WHERE a.probe = 'noise-60dbfs') AS noise_class,
       max(a.prob) FILTER (WHERE a.probe = 'noise-60dbfs') AS noise_prob,
       coalesce(e.explained, 0) AS explained,
       coalesce(e.empty_sufficient, 0) AS empty_sufficient
FROM answers AS a
LEFT JOIN explained AS e USING (model)
GROUP BY a.task, a.model, a.n_samples, a.seconds, e.explained, e.empty_sufficient
ORDER BY a.task, a.model, a.n_samples
"""


def card(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, model, n_samples, seconds, silence_class, silence_prob, noise_class,
    noise_prob, explained (the model's explanations, every parameter set) and
    empty_sufficient (those whose sufficient mask keeps no bin)."""
    return query(con, _CARD_SQL)


def shared_silence(frame: pl.DataFrame) -> list[str]:
    """A note per task and probe length where several models give silence one class."""
    notes = []
    keys = ["task", "n_samples", "silence_class"]
    for (task, _n, cls), rows in sorted(frame.group_by(keys), key=lambda g: g[0]):
        if rows.height > 1:
            models = ", ".join(sorted(rows["model"]))
            notes.append(
                f"{task}: {models} all give silence the class {cls}: they accept each "
                "other's empty signals."
            )
    return notes


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The card (one row per model and probe length), and notes on shared silence classes."""
    section = Section("silence", TITLE, INTRO)
    if not has_relations(con, "model_probes") or count(con, "model_probes") == 0:
        section.missing = (
            "No answers to the silence and noise probes are stored yet: run "
            "`sigwh ingest --model M` (it stores M's answers first, also when every clip "
            "is explained)."
        )
        return section
    frame = card(con)
    section.tables.append(
        Table("silence_card", "Each model's class and probability on the probes.", frame)
    )
    section.notes += shared_silence(frame)
    return section
