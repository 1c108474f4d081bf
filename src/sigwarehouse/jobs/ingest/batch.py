"""What one ingest batch computes, apart from where its inputs come from and where its
rows go: waves and models in, row tuples out.

Three drivers call these functions: the local job (local.py, which reads the clips
from the warehouse and writes through its BatchWriter), the Ray actors (on_ray.py,
which receive the clips' sources and return Arrow tables to the one writing driver) and
the shard job (which writes into its own file). Keeping the computation here, pure, is
what makes a distributed run give the same rows as a local one: explanations are seeded
per clip, so a batch's rows do not depend on which process or which batch made them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch

from sigwarehouse import noise_floor
from sigwarehouse.audio import ClipLoadError, ClipSource, load_source
from sigwarehouse.freqrex import explain
from sigwarehouse.freqrex.spectral import pack_mask, unpack_mask
from sigwarehouse.jobs.ingest.plan import IngestPlan
from sigwarehouse.models.precision import float32_only
from sigwarehouse.models.scoring import entropy_bits, evaluate
from sigwarehouse.signals import derived_signals, encode_responsibility, evaluate_signals
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    from sigwarehouse.models.base import AudioClassifier

# The columns of each table's rows, in the order explain_rows and evaluate_signals
# build them.
EXPLANATION_COLUMNS = (
    "model", "clip_id", "params_hash", "run_id", "n_bins", "orig_class", "orig_conf",
    "responsibility", "sufficient_mask", "sufficient_size", "sufficient_reason", "complete_mask",
    "complete_size", "complete_reason", "queries", "minimality", "seconds",
)  # fmt: skip
ORIGINAL_COLUMNS = ("model", "clip_id", "probs", "top1", "entropy_bits", "run_id")
RANK_COLUMNS = ("model", "clip_id", "params_hash", "rank", "mask", "size", "run_id")
SIGNAL_COLUMNS = (
    "source_model", "clip_id", "params_hash", "kind", "target_model", "source_class", "probs",
    "top1", "entropy_bits", "run_id",
)  # fmt: skip

# A stored explanation as cross-filling needs it: (source model, clip id, n_bins,
# orig_class, sufficient mask, complete mask, [further sufficient masks]).
StoredMasks = tuple[str, int, int, int, bytes | None, bytes | None, list[bytes] | None]


@dataclass
class BatchRows:
    """One batch's rows for each table the ingest job writes, its errors, and what it
    adds to the run's counters (queries and model seconds are counted by the models
    themselves: runs.timed)."""

    explanations: list[tuple] = field(default_factory=list)
    originals: list[tuple] = field(default_factory=list)
    signals: list[tuple] = field(default_factory=list)
    ranks: list[tuple] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    clips_done: int = 0
    float32_retries: int | None = None  # clips searched again in float32; None: no search
    cross_filled: int = 0

    def tables(self) -> list[write_path.Rows]:
        """The rows as write_path.write_batch takes them."""
        return [
            write_path.Rows("explanations", EXPLANATION_COLUMNS, self.explanations),
            write_path.Rows("sufficient_ranks", RANK_COLUMNS, self.ranks),
            write_path.Rows("original_probs", ORIGINAL_COLUMNS, self.originals),
            write_path.Rows("signal_probs", SIGNAL_COLUMNS, self.signals),
        ]

    def count_into(self, counters: write_path.RunCounters) -> None:
        """Add this batch's clips, errors, float32 retries and cross-filled explanations."""
        counters.clips_done += self.clips_done
        counters.n_errors += len(self.errors)
        extra = counters.extra
        if self.float32_retries is not None:
            extra["float32_retries"] = extra.get("float32_retries", 0) + self.float32_retries
        if self.cross_filled:
            extra["cross_filled"] = extra.get("cross_filled", 0) + self.cross_filled

    # Arrow is how the rows travel from a Ray actor to the driver: columnar buffers that
    # Ray's object store moves without pickling each value. The round trip is exact for
    # these columns (ints, floats, strings, bytes, lists of floats, None).
    def to_arrow(self) -> dict:
        tables = {t.table: write_path.arrow_table(t) if t.rows else None for t in self.tables()}
        return {
            "tables": tables,
            "errors": self.errors,
            "counts": (self.clips_done, self.float32_retries, self.cross_filled),
        }

    @classmethod
    def from_arrow(cls, payload: dict) -> BatchRows:
        def rows(name: str) -> list[tuple]:
            table: pa.Table | None = payload["tables"].get(name)
            if table is None:
                return []
            columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
            return list(zip(*columns, strict=True))

        clips_done, retries, cross = payload["counts"]
        return cls(
            explanations=rows("explanations"),
            originals=rows("original_probs"),
            signals=rows("signal_probs"),
            ranks=rows("sufficient_ranks"),
            errors=list(payload["errors"]),
            clips_done=clips_done,
            float32_retries=retries,
            cross_filled=cross,
        )


def waves_of(samples: list[np.ndarray], device: str) -> list[torch.Tensor]:
    """Decoded clips (audio.load_source) as tensors on the device."""
    return [torch.from_numpy(np.ascontiguousarray(s)).to(device) for s in samples]


def _load_each(
    model: str, sources: list[ClipSource]
) -> tuple[list[int], list[np.ndarray], list[dict]]:
    """Each clip's audio (audio.load_source): the ids and samples of those that load,
    and a job_errors row naming each one that does not (a damaged blob, a moved or
    changed file) and why."""
    loaded, samples, errors = [], [], []
    for source in sources:
        try:
            samples.append(load_source(source))
        except ClipLoadError as exc:
            errors.append(dict(model=model, clip_id=source.clip_id, stage="load", error=str(exc)))
            continue
        loaded.append(source.clip_id)
    return loaded, samples, errors


def floor_sources(
    plan: IngestPlan, sources: list[ClipSource], clf: AudioClassifier, run_id: str, device: str
) -> list[tuple]:
    """The model's `model_noise_floors` row, measured on the clips (`sources`) whose audio
    loads (noise_floor.py), in float32 like every stored probability."""
    loaded, samples, _ = _load_each(plan.model, sources)  # the search reports the others
    with float32_only():
        return noise_floor.floor_rows(clf, plan.model, loaded, waves_of(samples, device), run_id)


def explain_sources(
    plan: IngestPlan,
    sources: list[ClipSource],
    models: dict[str, AudioClassifier],
    run_id: str,
    device: str,
) -> BatchRows:
    """explain_rows on the clips (`sources`, in order) whose audio loads; a clip whose
    audio cannot be loaded gets a job_errors row and the others are explained as ever."""
    loaded, samples, errors = _load_each(plan.model, sources)
    if not loaded:
        return BatchRows(errors=errors)
    rows = explain_rows(plan, loaded, waves_of(samples, device), models, run_id)
    rows.errors = errors + rows.errors
    return rows


def cross_fill_sources(
    plan: IngestPlan,
    stored: list[StoredMasks],
    sources: list[ClipSource],
    target: AudioClassifier,
    run_id: str,
    device: str,
) -> BatchRows:
    """cross_fill_rows on the stored signals whose clip's audio (`sources`) loads; a
    clip that cannot be loaded gets a job_errors row, as in explain_sources."""
    loaded, samples, errors = _load_each(plan.model, sources)
    waves = dict(zip(loaded, waves_of(samples, device), strict=True))
    rows = cross_fill_rows(plan, [row for row in stored if row[1] in waves], waves, target, run_id)
    rows.errors = errors + rows.errors
    return rows


def explain_rows(
    plan: IngestPlan,
    clip_ids: list[int],
    waves: list[torch.Tensor],
    models: dict[str, AudioClassifier],
    run_id: str,
) -> BatchRows:
    """Explain clips with plan.model and evaluate their signals on every model."""
    params, ph = plan.params, plan.params.hash()
    explainer = models[plan.model]
    out = BatchRows()
    # A clip on which the model gives NaN cannot be explained: record it, keep the rest.
    # Every probability stored is the float32 model's (the search's mutants alone may
    # run in lower precision: see freqrex.engine).
    with float32_only():
        first = evaluate(explainer, waves, params.batch_size)
    finite = np.isfinite(first).all(axis=1)
    for clip_id in np.asarray(clip_ids)[~finite]:
        out.errors.append(
            dict(model=plan.model, clip_id=int(clip_id), stage="original",
                 error=f"model {plan.model} returned non-finite probabilities on the clip")
        )  # fmt: skip
    clip_ids = [c for c, ok in zip(clip_ids, finite, strict=True) if ok]
    waves = [w for w, ok in zip(waves, finite, strict=True) if ok]
    start = time.perf_counter()
    try:
        results = explain(explainer, waves, params, margin=plan.noise_floor) if waves else []
    except Exception:  # find the clip that breaks the search: explain them one by one
        results = []
        for clip_id, wave in zip(clip_ids, waves, strict=True):
            try:
                results += explain(explainer, [wave], params, margin=plan.noise_floor)
            except Exception as exc:
                results.append(None)
                out.errors.append(
                    dict(model=plan.model, clip_id=clip_id, stage="search", error=repr(exc))
                )
    per_clip_s = (time.perf_counter() - start) / max(len(clip_ids), 1)
    signals = []
    for clip_id, wave, ex in zip(clip_ids, waves, results, strict=True):
        if ex is None:
            continue
        sufficient, complete = ex.sufficient_mask, ex.complete_mask
        further = ex.extra_sufficient_masks  # verified by the engine, disjoint from rank 1
        signals += derived_signals(
            plan.model, clip_id, ex.label_index, wave, sufficient, complete, params, further
        )
        out.ranks += [
            (plan.model, clip_id, ph, rank, pack_mask(m), int(m.sum()), run_id)
            for rank, m in enumerate(further, start=2)
        ]
        out.explanations.append(
            (
                plan.model, clip_id, ph, run_id, ex.n_vars, ex.label_index, float(ex.confidence),
                encode_responsibility(ex.responsibility),
                None if sufficient is None else pack_mask(sufficient),
                None if sufficient is None else int(sufficient.sum()), ex.sufficient_reason,
                None if complete is None else pack_mask(complete),
                None if complete is None else int(complete.sum()), ex.complete_reason,
                int(ex.queries), json.dumps(ex.minimality), per_clip_s,
            )
        )  # fmt: skip
        out.originals.append(original_row(plan.model, clip_id, ex.probs, run_id))
    explained = [row[1] for row in out.explanations]  # in clip_ids order
    wave_of = dict(zip(clip_ids, waves, strict=True))
    with float32_only():
        out.signals, eval_errors = evaluate_signals(signals, models, ph, params.batch_size, run_id)
        others = {name: clf for name, clf in models.items() if name != plan.model}
        out.originals += originals_of(
            others, explained, [wave_of[c] for c in explained], params.batch_size, run_id
        )
    out.errors += eval_errors
    out.clips_done = len(out.explanations)
    out.float32_retries = sum(1 for ex in results if ex is not None and ex.float32_retry)
    return out


def cross_fill_rows(
    plan: IngestPlan,
    stored: list[StoredMasks],
    waves: dict[int, torch.Tensor],
    target: AudioClassifier,
    run_id: str,
) -> BatchRows:
    """plan.model's probabilities on other models' stored signals (`waves` by clip id)."""
    ph = plan.params.hash()
    signals = []
    for source, clip_id, n, cls, suf, comp, further in stored:
        signals += derived_signals(
            source, clip_id, cls, waves[clip_id],
            None if suf is None else unpack_mask(suf, n),
            None if comp is None else unpack_mask(comp, n),
            plan.params,
            [unpack_mask(m, n) for m in further or []],
        )  # fmt: skip
    clips = sorted({clip_id for _, clip_id, *_ in stored})
    with float32_only():
        rows, errors = evaluate_signals(
            signals, {plan.model: target}, ph, plan.params.batch_size, run_id
        )
        originals = originals_of(
            {plan.model: target}, clips, [waves[c] for c in clips], plan.params.batch_size, run_id
        )
    return BatchRows(signals=rows, originals=originals, errors=errors, cross_filled=len(stored))


def original_row(model: str, clip_id: int, probs: np.ndarray, run_id: str) -> tuple:
    """An original_probs row (ORIGINAL_COLUMNS) of the model's probabilities on a clip."""
    probs = np.asarray(probs, dtype=np.float32)
    return (
        model, clip_id, probs.tolist(), int(probs.argmax()),
        float(entropy_bits(probs[None])[0]), run_id,
    )  # fmt: skip


def originals_of(
    models: dict[str, AudioClassifier],
    clip_ids: list[int],
    waves: list[torch.Tensor],
    batch_size: int,
    run_id: str,
) -> list[tuple]:
    """Each model's original_probs rows on the clips: every model of a task answers the
    clips any of them explained, so a model that explains none (a dear one, left to
    answer) still has an accuracy on the warehouse's clips. Stored as INSERT OR IGNORE:
    the model's own job, or another's, may have stored the row already, with the same
    probabilities (a clip's answer does not depend on its batch). A clip on which a model
    gives non-finite probabilities gets no row (its signals' rows record the error)."""
    if not waves:
        return []
    rows = []
    for name, clf in models.items():
        probs = evaluate(clf, waves, batch_size)
        rows += [
            original_row(name, clip_id, p, run_id)
            for clip_id, p in zip(clip_ids, probs, strict=True)
            if np.isfinite(p).all()
        ]
    return rows
