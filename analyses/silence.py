"""The silence card: what each model says to signals that carry no evidence.

Where the all-zero signal already gets a clip's class, the clip's sufficient mask keeps
no bin, and every model that gives the same class to silence "accepts" that empty
signal. The card shows, per model, the class and probability it gives the all-zero
signal and white noise at -60 dBFS (table `model_probes`, stored by `sigwh ingest`; see
`sigwarehouse.probes`), at the task's clip length, beside how many of its
sufficient masks are empty. Two models with the same silence class accept each other's
empty signals whatever they listen to.

Beside it, each model's rendering noise floor (table `model_noise_floors`, see
`sigwarehouse.noise_floor`): how far its answer moves when a sparse signal is rebuilt in
ways no listener hears. Its search starts from that margin, so a model with a high floor
needs larger masks for a verdict no rebuild can flip.
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
    "that empty signal. Those acceptances count in α and not in α over non-empty signals. "
    "`noise_floor`: the margin the model's search starts from, the 0.9 quantile of how far "
    "its answer moves (any class probability) when a sparse signal of its task (a clip's "
    "1, 4, 16 or 64 strongest bins, or the clip) is rebuilt in float32 or float64, written "
    "as a 16-bit WAV, or changed by one least significant bit; `max_move` is the largest "
    "such move and `top1_differs` the share of those signals (`floor_signals` of them) "
    "whose class it changed "
    "(table `model_noise_floors`; empty where the model has not explained a clip yet)."
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
floors AS (
    SELECT model, arg_max(noise_floor, method) AS noise_floor,
           arg_max(max_move, method) AS max_move, arg_max(top1_differs, method) AS top1_differs,
           arg_max(n_signals, method) AS floor_signals
    FROM model_noise_floors GROUP BY model
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
       coalesce(e.empty_sufficient, 0) AS empty_sufficient,
       f.noise_floor::DOUBLE AS noise_floor, f.max_move::DOUBLE AS max_move,
       f.top1_differs::DOUBLE AS top1_differs, f.floor_signals
FROM answers AS a
LEFT JOIN explained AS e USING (model)
LEFT JOIN floors AS f USING (model)
GROUP BY a.task, a.model, a.n_samples, a.seconds, e.explained, e.empty_sufficient,
         f.noise_floor, f.max_move, f.top1_differs, f.floor_signals
ORDER BY a.task, a.model, a.n_samples
"""


def card(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """task, model, n_samples, seconds, silence_class, silence_prob, noise_class,
    noise_prob, explained (the model's explanations, every parameter set),
    empty_sufficient (those whose sufficient mask keeps no bin), and the model's
    rendering noise_floor, max_move and top1_differs over floor_signals signals (null
    until it is measured)."""
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
    section.notes += high_floors(frame)
    return section


def high_floors(frame: pl.DataFrame, above: float = 0.01) -> list[str]:
    """A note per model whose floor is above `above` or whose class some rebuild changed."""
    noisy = (pl.col("noise_floor") > above) | (pl.col("top1_differs") > 0)
    rows = frame.filter(noisy).unique("model").sort("model")
    return [
        f"{r['model']}: its answer moves by up to {r['max_move']:.3g} when a sparse signal is "
        f"rebuilt (0.9 quantile {r['noise_floor']:.3g} over {r['floor_signals']} signals; the "
        f"class changed on {round(r['top1_differs'] * r['floor_signals'])} of them): its masks "
        f"are searched with a margin "
        f"of at least {r['noise_floor']:.3g}, so they are larger than a noiseless model's."
        for r in rows.iter_rows(named=True)
    ]
