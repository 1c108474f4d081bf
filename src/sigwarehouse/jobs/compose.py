"""`sigwh compose --model M`: a global composite per class (the paper's section 5.1).

For each dataset of M's task and each class c, the candidates are M's stored sufficient
signals of class c (clips M gives c, explained with one freqrex parameter set) that keep
at least one bin; a sufficient mask that keeps nothing (M gives c to silence) would only
scale the composite down, so such clips are counted (`n_empty`) and left out.

The procedure (documented choices):

- Order: the candidates' clip ids, sorted, then shuffled by a seeded permutation
  (NumPy's default_rng seeded with `seed` and a CRC of model/dataset/class, so classes
  and models get independent orders). The order tried is stored (`candidates`).
- Length: clips differ in length, so every sufficient signal (built at its clip's own
  length, irfft(m · rfft(clip))) is cropped at the end or zero-padded at the end to the
  lower median length of the candidates: a real clip length, the same whatever the order.
- Greedy superposition: κ starts empty; each candidate in turn is kept when M gives c,
  by at least the explanations' `decision_margin`, to the mean of κ plus that candidate.
- The composite (mean of κ) is stored as 24-bit FLAC; M's probabilities stored with it
  are those of the stored (decoded) audio, so everything downstream uses exactly what
  is stored. It also gets a mask of its own for label transfer: freqrex's sufficient
  mask of the composite (the explanations' parameters, always in the rfft-bin space),
  and the union of the members' sufficient masks mapped by frequency (`map_mask`).

Resumable like ingest: composites already stored for (model, dataset, class, parameter
set, seed) are skipped; each composite is written in its own transaction.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sigwarehouse import store
from sigwarehouse.audio import decode_flac, encode_flac, load_clips
from sigwarehouse.freqrex import explain
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.freqrex.spectral import pack_mask, unpack_mask
from sigwarehouse.jobs.skeleton import job_run, timed_models
from sigwarehouse.records import (
    ModelRecord,
    explained_params,
    model_record,
    task_datasets,
    task_labels,
)
from sigwarehouse.signals import fit_length, map_mask, masked_signal
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb

    from sigwarehouse.models.base import AudioClassifier


# --- the order of the candidates, and when one is kept -----------------------------------


def candidate_order(
    clip_ids: list[int], seed: int, model: str, dataset: str, cls: int
) -> list[int]:
    """The clip ids sorted, then shuffled by a permutation seeded with seed and the key."""
    key = zlib.crc32(f"{model}/{dataset}/{cls}".encode())
    rng = np.random.default_rng([int(seed), key])
    ordered = sorted(int(c) for c in clip_ids)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def margin_keeps(probs: np.ndarray, cls: int, margin: float) -> bool:
    """True when class cls beats every other class by at least `margin`."""
    others = np.delete(np.asarray(probs, dtype=np.float64), cls)
    return bool(probs[cls] - (others.max() if others.size else 0.0) >= margin)


# --- planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    clip_id: int
    n_bins: int
    mask: bytes  # packed sufficient mask


@dataclass
class ComposeItem:
    """One composite to make: M's class `cls` on `dataset`."""

    dataset: str
    cls: int
    candidates: list[Candidate]  # in the seeded order
    n_empty: int


@dataclass
class ComposePlan:
    model: ModelRecord
    labels: list[str]
    sample_rate: int
    params_hash: str
    params: FreqrexParams
    seed: int
    items: list[ComposeItem]
    stored: int  # composites already stored (skipped)
    stale: list[str] = field(default_factory=list)  # stored, but more clips explained since

    def is_empty(self) -> bool:
        """True when every composite is stored."""
        return not self.items

    def describe(self) -> str:
        lines = [
            f"model {self.model.model} (task {self.model.task}), explanations {self.params_hash},"
            f" seed {self.seed}: {self.stored} composite(s) stored, {len(self.items)} to make"
        ]
        for it in self.items:
            lines.append(
                f"  {it.dataset} / {self.labels[it.cls]}: {len(it.candidates)} candidate(s)"
                f", {it.n_empty} empty sufficient signal(s) left out"
            )
        if self.stale:
            lines.append(
                f"  note: stored composite(s) of {', '.join(self.stale)} were made before more "
                "clips were explained; they are kept (compose with another --seed for new ones)"
            )
        return "\n".join(lines)


def plan_compose(
    con: duckdb.DuckDBPyConnection,
    model: str,
    *,
    dataset: str | None = None,
    seed: int = 0,
    params_hash: str | None = None,
) -> ComposePlan:
    """The composites still to make for `model` (one per dataset and class of its task)."""
    record = model_record(con, model)
    labels, rate = task_labels(con, record.task)
    ph, params = explained_params(con, model, params_hash)
    stored = {
        (d, c): (sorted(k), e)
        for d, c, k, e in con.execute(
            "SELECT dataset, class, candidates, n_empty FROM composites"
            " WHERE model = ? AND params_hash = ? AND seed = ?",
            [model, ph, seed],
        ).fetchall()
    }
    items, stale = [], []
    for ds in task_datasets(con, record.task, dataset):
        for cls in range(len(labels)):
            rows = con.execute(
                "SELECT e.clip_id, e.n_bins, e.sufficient_mask, e.sufficient_size"
                " FROM explanations e JOIN clips c USING (clip_id)"
                " WHERE e.model = ? AND e.params_hash = ? AND c.dataset = ? AND e.orig_class = ?"
                "   AND e.sufficient_mask IS NOT NULL",
                [model, ph, ds, cls],
            ).fetchall()
            usable = {r[0]: Candidate(r[0], r[1], r[2]) for r in rows if r[3] > 0}
            n_empty = sum(r[3] == 0 for r in rows)
            if (ds, cls) in stored:
                if stored[(ds, cls)] != (sorted(usable), n_empty):
                    stale.append(f"{ds} / {labels[cls]}")
                continue
            order = candidate_order(list(usable), seed, model, ds, cls)
            items.append(ComposeItem(ds, cls, [usable[c] for c in order], n_empty))
    return ComposePlan(record, labels, rate, ph, params, seed, items, len(stored), stale)


# --- the composition --------------------------------------------------------------------


@dataclass
class Composite:
    members: list[int]  # indexes into the candidates
    wave: np.ndarray | None


def greedy_compose(
    clf: AudioClassifier, signals: list[torch.Tensor], cls: int, margin: float
) -> Composite:
    """Superimpose (mean) the signals in order, keeping each one while clf still says cls.

    `signals` are 1-D tensors of one length on clf's device. One model query per
    candidate (each decision depends on the previous ones).
    """
    total, members = None, []
    for i, s in enumerate(signals):
        trial = s if total is None else total + s
        probs = clf((trial / (len(members) + 1))[None])[0].float().cpu().numpy()
        if np.isfinite(probs).all() and margin_keeps(probs, cls, margin):
            total, members = trial, [*members, i]
    if total is None:
        return Composite([], None)
    return Composite(members, (total / len(members)).cpu().numpy().astype(np.float32))


@dataclass
class ComposeSummary:
    run_id: str
    plan: ComposePlan
    made: list[tuple[str, str, int, int]] = field(default_factory=list)  # ds, label, |κ|, n
    counters: write_path.RunCounters = field(default_factory=write_path.RunCounters)
    status: str = "running"

    def describe(self) -> str:
        parts = [f"{d}/{label}: {k}/{n}" for d, label, k, n in self.made]
        return (
            f"run {self.run_id} {self.status}: {len(self.made)} composite(s) of "
            f"{self.plan.model.model} ({', '.join(parts) or 'none'}), "
            f"{self.counters.queries:,} model queries in {self.counters.total_seconds:.1f} s"
        )


def _member_signals(
    path: Path, item: ComposeItem, params: FreqrexParams
) -> tuple[list[np.ndarray], int]:
    """Each candidate's sufficient signal (at its clip's length) and the common length."""
    with store.opened(path, read_only=True) as con:
        clips = load_clips(con, [c.clip_id for c in item.candidates])
    signals = [
        masked_signal(x, unpack_mask(c.mask, c.n_bins), params.to_dict())
        for x, c in zip(clips, item.candidates, strict=True)
    ]
    lengths = sorted(len(x) for x in clips)
    return signals, lengths[(len(lengths) - 1) // 2]


_COLUMNS = (
    "model", "dataset", "class", "params_hash", "seed", "run_id", "candidates", "members",
    "n_candidates", "n_composed", "n_empty", "n_samples", "sample_rate", "audio", "probs", "top1",
    "members_mask", "members_mask_size", "sufficient_mask", "sufficient_size",
    "sufficient_reason", "queries", "seconds", "reason",
)  # fmt: skip


def _compose_item(
    path: Path, plan: ComposePlan, item: ComposeItem, clf: AudioClassifier, run_id: str
) -> dict:
    """The composites row of one item, by column (computed with the warehouse closed)."""

    start = time.perf_counter()
    ids = [c.clip_id for c in item.candidates]
    row = dict.fromkeys(_COLUMNS)
    row.update(
        model=plan.model.model, dataset=item.dataset, params_hash=plan.params_hash,
        seed=plan.seed, run_id=run_id, candidates=ids, members=[], n_candidates=len(ids),
        n_composed=0, n_empty=item.n_empty, n_samples=0, sample_rate=plan.sample_rate,
        queries=0, seconds=0.0,
    )  # fmt: skip
    row["class"] = item.cls
    if not item.candidates:
        row["reason"] = (
            f"every sufficient signal of the class keeps no bin ({item.n_empty} clips): "
            f"{plan.model.model} gives the class to silence"
            if item.n_empty
            else "no explained clip has this class"
        )
        return row
    signals, length = _member_signals(path, item, plan.params)
    waves = [torch.from_numpy(fit_length(s, length)).to(clf.device) for s in signals]
    found = greedy_compose(clf, waves, item.cls, plan.params.decision_margin)
    row.update(n_samples=length, queries=len(waves), members=[ids[i] for i in found.members])
    row["n_composed"] = len(found.members)
    if found.wave is None:
        row["reason"] = "no candidate alone keeps the class at the common length"
        row["seconds"] = time.perf_counter() - start
        return row
    row["audio"] = encode_flac(found.wave, plan.sample_rate)
    stored, _ = decode_flac(row["audio"])
    if plan.params.space == "fft":  # STFT-cell masks have no single frequency per variable
        union = np.zeros(length // 2 + 1, dtype=bool)
        for i in found.members:
            c = item.candidates[i]
            union |= map_mask(unpack_mask(c.mask, c.n_bins), len(signals[i]), length)
        row.update(members_mask=pack_mask(union), members_mask_size=int(union.sum()))
    wave = torch.from_numpy(np.ascontiguousarray(stored)).to(clf.device)
    ex = explain(clf, [wave], replace(plan.params, space="fft"))[0]
    probs = np.asarray(ex.probs, dtype=np.float32)
    row.update(probs=probs.tolist(), top1=int(probs.argmax()), queries=row["queries"] + ex.queries)
    if ex.sufficient_mask is not None:
        row.update(
            sufficient_mask=pack_mask(ex.sufficient_mask),
            sufficient_size=int(ex.sufficient_mask.sum()),
        )
    row["sufficient_reason"] = ex.sufficient_reason
    row["seconds"] = time.perf_counter() - start
    return row


def run_compose(
    path: Path,
    plan: ComposePlan,
    *,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> ComposeSummary:
    """Make the plan's composites, storing each in its own transaction; returns the summary.

    A model that cannot load fails the job before any work; stored composites stay
    stored whatever happens (Ctrl-C ends the run as `interrupted`).
    """
    counters = write_path.RunCounters()
    clf = timed_models([plan.model], plan.labels, device, counters)[plan.model.model]
    with job_run(
        path, lambda run_id: ComposeSummary(run_id, plan, counters=counters), counters,
        job="compose", model=plan.model.model, task=plan.model.task,
        dataset=",".join(sorted({i.dataset for i in plan.items})) or None,
        params={"seed": plan.seed, "explanations": plan.params_hash,
                "order": "seeded permutation", "length": "lower median, crop/pad at end"},
        params_hash=plan.params_hash, seed=plan.seed, device=device,
    ) as run:  # fmt: skip
        for item in plan.items:
            row = _compose_item(path, plan, item, clf, run.run_id)
            counters.clips_done += row["n_composed"]
            run.clock()
            run.write([write_path.Rows("composites", _COLUMNS, [tuple(row[c] for c in _COLUMNS)])])
            label, kept, tried = plan.labels[item.cls], row["n_composed"], row["n_candidates"]
            run.summary.made.append((item.dataset, label, kept, tried))
            if progress:
                progress(f"{item.dataset}/{label}: kept {kept} of {tried} candidates")
    return run.summary
