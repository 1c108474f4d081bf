"""Listenable examples: a clip's original, sufficient, complete and inverse signals.

The report's "Listen" section, an analysis like the others (`run(con) -> Section`). For
a few clips per model, the signals are rebuilt from the stored clip audio and the
stored masks (signal = irfft(mask · rfft(clip)), the removed bins set to 0, as in
docs/definitions.md), encoded as 16-bit WAV, and shown with the class every model of the task gave
each one (stored in `original_probs` and `signal_probs`). Levels are not normalised: a
sufficient signal that keeps a few bins is as quiet as those bins are in the clip.
"""

from __future__ import annotations

import json

import duckdb

from sigwarehouse.analyses.common import count, has_relations, unpack_mask
from sigwarehouse.audio import ClipLoadError, load_clip, wav_bytes
from sigwarehouse.report.sections import Example, ExampleSignal, Section, Verdict
from sigwarehouse.signals import masked_signal

PER_MODEL = 2  # examples of each explained model
TITLE = "Listen: original, sufficient, complete and inverse signals"
INTRO = (
    "For a few clips per model: the clip, the signal that keeps only the model's "
    "sufficient frequency bins, the one that keeps its complete bins, and the inverse "
    "(the complete bins removed), rebuilt from the stored audio and masks. Each model "
    "column gives that model's top-1 class and its probability, green when it is the "
    "explained model's class for the clip (on the inverse signal, green means the model "
    "still gives that class without the complete bins). Levels are not normalised: a "
    "signal that keeps few bins is quiet."
)


def run(con: duckdb.DuckDBPyConnection, per_model: int = PER_MODEL) -> Section:
    """The examples of `collect`, shown by task, or why there are none."""
    section = Section("examples", TITLE, INTRO, short_title="Listen")
    if not has_relations(con, "explanations") or count(con, "explanations") == 0:
        section.missing = "No explanations are stored yet: run `sigwh ingest --model M`."
        return section
    section.examples, section.notes = collect(con, per_model)
    if not section.examples:
        section.missing = "No stored clip audio could be loaded for the explained clips."
    return section


# The choice reads keys and ranks only (masks are large); the chosen rows come with theirs.
_CHOICE_SQL = """
WITH ranked AS (
    SELECT e.model, e.clip_id, e.params_hash, m.task,
           e.sufficient_mask IS NULL AS no_sufficient, e.complete_mask IS NULL AS no_complete,
           row_number() OVER (PARTITION BY e.model, e.orig_class
                              ORDER BY e.sufficient_mask IS NULL, e.complete_mask IS NULL,
                                       e.clip_id) AS nth_of_class
    FROM explanations AS e
    JOIN models AS m ON m.model = e.model
    JOIN parameter_sets AS ps
      ON ps.task = m.task AND ps.params_hash = e.params_hash AND ps.shown
),
chosen AS (
    SELECT * FROM ranked
    QUALIFY row_number() OVER (PARTITION BY model ORDER BY nth_of_class, no_sufficient,
                                                           no_complete, clip_id) <= $per_model
)
SELECT e.model, e.clip_id, e.params_hash, e.n_bins, e.orig_class, e.orig_conf,
       e.sufficient_mask, e.sufficient_size, e.sufficient_reason, e.complete_mask,
       e.complete_size, e.complete_reason, c.dataset, c.path, c.label, k.task, t.labels,
       t.sample_rate, p.params, k.nth_of_class
FROM chosen AS k
JOIN explanations AS e USING (model, clip_id, params_hash)
JOIN clips AS c ON c.clip_id = e.clip_id
JOIN tasks AS t ON t.task = k.task
LEFT JOIN freqrex_params AS p ON p.params_hash = e.params_hash
ORDER BY k.task, e.model, k.nth_of_class, k.no_sufficient, k.no_complete, e.clip_id
"""
# Every model's probabilities on the chosen examples' signals, in one scan of the rows.
_VERDICTS_SQL = """
SELECT s.source_model, s.clip_id, s.params_hash, s.kind, s.target_model, s.probs, s.top1
FROM signal_probs AS s
SEMI JOIN (SELECT unnest($models) AS model, unnest($clips) AS clip_id,
                  unnest($hashes) AS params_hash) AS k
  ON k.model = s.source_model AND k.clip_id = s.clip_id AND k.params_hash = s.params_hash
"""


def _verdicts(rows: list[tuple], labels: list[str], source_class: int) -> dict[str, Verdict]:
    return {
        model: Verdict(labels[top1], float(probs[top1]), top1 == source_class)
        for model, probs, top1 in rows
    }


def collect(con: duckdb.DuckDBPyConnection, per_model: int = 2) -> tuple[list[Example], list[str]]:
    """Up to `per_model` examples per explained model, and notes on clips that were skipped.

    Examples come in the page's order, by task and then model, from the parameter set the
    task's views show (view `parameter_sets`). Clips with a complete mask come first, one
    per class of the model before a second of any class, lowest clip id first, so the
    choice is stable. A clip whose audio cannot be loaded (file moved, no blob) is
    skipped with a note.
    """
    rows = con.execute(_CHOICE_SQL, {"per_model": per_model}).fetchall()
    verdicts: dict[tuple, dict[str, list[tuple]]] = {}
    keys = {"models": [r[0] for r in rows], "clips": [r[1] for r in rows],
            "hashes": [r[2] for r in rows]}  # fmt: skip
    found = con.execute(_VERDICTS_SQL, keys).fetchall() if rows else []
    for model, clip, ph, kind, target, probs, top1 in found:
        verdicts.setdefault((model, clip, ph), {}).setdefault(kind, []).append(
            (target, probs, top1)
        )
    examples, notes = [], []
    for row in rows:
        try:
            examples.append(_example(con, row, verdicts.get(row[:3], {})))
        except ClipLoadError as exc:
            notes.append(f"{row[0]}, clip {row[1]}: audio unavailable ({exc})")
    return examples, notes


def _example(
    con: duckdb.DuckDBPyConnection, row: tuple, by_kind: dict[str, list[tuple]]
) -> Example:
    """One example; `by_kind`: every model's (target, probs, top1) on its signals, by kind."""
    (model, clip_id, params_hash, n_bins, orig_class, orig_conf, suff_blob, suff_size,
     suff_reason, comp_blob, comp_size, comp_reason, dataset, path, label, task, labels, rate,
     params, _) = row  # fmt: skip
    params = json.loads(params) if params else None
    unit = "cells" if params and params.get("space") == "stft" else "bins"
    samples = load_clip(con, clip_id)
    targets = [m for (m,) in con.execute(
        "SELECT model FROM models WHERE task = ? ORDER BY model", [task]
    ).fetchall()]  # fmt: skip
    original = con.execute(
        "SELECT model, probs, top1 FROM original_probs WHERE clip_id = ?", [clip_id]
    ).fetchall()
    signals = [
        ExampleSignal(
            "original",
            wav_bytes(samples, rate),
            f"all {n_bins} {unit}",
            _verdicts(original, labels, orig_class),
        )
    ]
    if suff_blob is None:
        reason = f"no sufficient mask ({suff_reason})" if suff_reason else "no sufficient mask"
        signals.append(ExampleSignal("sufficient", None, "–", note=reason))
    else:
        suff = unpack_mask(suff_blob, n_bins)
        signals.append(
            ExampleSignal(
                "sufficient",
                wav_bytes(masked_signal(samples, suff, params), rate),
                # an empty mask: the all-zero signal keeps the class (see the silence card)
                f"{suff_size} of {n_bins} {unit}" + (" (silence)" if suff_size == 0 else ""),
                _verdicts(by_kind.get("sufficient", []), labels, orig_class),
            )
        )
    if comp_blob is None:
        reason = f"no δ-complete mask ({comp_reason})" if comp_reason else "no δ-complete mask"
        for kind in ("complete", "inverse"):
            signals.append(ExampleSignal(kind, None, "–", note=reason))
    else:
        comp = unpack_mask(comp_blob, n_bins)
        for kind, mask, kept in (
            ("complete", comp, f"{comp_size} of {n_bins} {unit}"),
            ("inverse", ~comp, f"{n_bins - comp_size} of {n_bins} {unit}"),
        ):
            signals.append(
                ExampleSignal(
                    kind,
                    wav_bytes(masked_signal(samples, mask, params), rate),
                    kept,
                    _verdicts(by_kind.get(kind, []), labels, orig_class),
                )
            )
    return Example(
        model, task, clip_id, dataset, path, label, labels[orig_class], float(orig_conf),
        params_hash, targets, signals,
    )  # fmt: skip
