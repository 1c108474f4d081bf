"""`sigwh transfer-label --model M --from fake --to real`: the paper's section 5.3.

M's composite of the `from` class (made by `sigwh compose`) gives a mask over the
composite's rfft bins: by default the composite's own freqrex sufficient mask
(`--mask sufficient`), or the union of its members' sufficient masks (`--mask members`).
The mask is applied, with no other change, to every clip of the same dataset that M
gives the `to` class: the clip keeps the bins whose frequency the mask keeps (mapped by
frequency in Hz, `signals.map_mask`; the rest are set to 0) and M is asked again. A row
per clip stores M's class before and after; the `label_transfer` view gives the share
that M now gives the `from` class.

M's class of each clip is computed afresh (one forward pass per clip), so every clip of
the dataset is considered, explained or not. A clip M gives the `from` class is stored
too (the mask applied to it, as a control): the view leaves it out, and a rerun knows it
has been checked. Resumable: clips already stored for the same composite and mask are
skipped, and so are clips whose stored original class (`original_probs`, from ingest) is
not a `to` class; only a clip M gives a class that is neither `from` nor `to` (a task of
three or more classes, with `--to`) is not stored, and a rerun checks it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sigwarehouse import store
from sigwarehouse.audio import load_clips
from sigwarehouse.errors import SigwhError
from sigwarehouse.freqrex.spectral import unpack_mask
from sigwarehouse.jobs.skeleton import chunks, job_run, timed_models
from sigwarehouse.models.scoring import evaluate
from sigwarehouse.records import (
    ModelRecord,
    class_index,
    explained_params,
    model_record,
    task_datasets,
    task_labels,
)
from sigwarehouse.signals import map_mask
from sigwarehouse.store import write_path

MASKS = ("sufficient", "members")


@dataclass
class Signature:
    """The composite mask applied to one dataset's clips."""

    dataset: str
    n_samples: int  # the composite's length: the mask is over its n_samples // 2 + 1 bins
    mask: np.ndarray
    clip_ids: list[int]  # clips of the dataset not yet stored


@dataclass
class TransferPlan:
    model: ModelRecord
    labels: list[str]
    sample_rate: int
    params_hash: str
    seed: int
    from_class: int
    to_classes: list[int]
    mask_kind: str
    signatures: list[Signature]
    skipped: list[str]  # datasets without a usable composite, with the reason

    def is_empty(self) -> bool:
        """True when every clip of every usable composite's dataset is stored."""
        return not any(s.clip_ids for s in self.signatures)

    def describe(self) -> str:
        to = ", ".join(self.labels[c] for c in self.to_classes)
        lines = [
            f"model {self.model.model}: the {self.labels[self.from_class]} composite's "
            f"{self.mask_kind} mask onto clips it gives {to} (explanations {self.params_hash}, "
            f"seed {self.seed})"
        ]
        for s in self.signatures:
            lines.append(
                f"  {s.dataset}: mask keeps {int(s.mask.sum())} of {len(s.mask)} bins; "
                f"{len(s.clip_ids)} clip(s) to check"
            )
        lines += [f"  skipped {reason}" for reason in self.skipped]
        return "\n".join(lines)


def plan_transfer(
    con,
    model: str,
    *,
    from_label: str = "fake",
    to_labels: list[str] | None = None,
    mask: str = "sufficient",
    dataset: str | None = None,
    seed: int = 0,
    params_hash: str | None = None,
) -> TransferPlan:
    """What `run_transfer` will do. `to_labels` None means every class but `from_label`.

    Refuses an unknown model, label or mask kind, and `to` equal to `from`. A dataset
    whose composite is missing or has no usable mask is skipped with its reason (all of
    them skipped: refused, saying what to run).
    """
    if mask not in MASKS:
        raise SigwhError(f"--mask must be one of {', '.join(MASKS)}, not {mask!r}")
    record = model_record(con, model)
    labels, rate = task_labels(con, record.task)
    source = class_index(labels, from_label)
    targets = [class_index(labels, t) for t in (to_labels or [])] or [
        c for c in range(len(labels)) if c != source
    ]
    if source in targets:
        raise SigwhError(f"--to must differ from --from ({from_label})")
    ph, _ = explained_params(con, model, params_hash)
    signatures, skipped = [], []
    for ds in task_datasets(con, record.task, dataset):
        size_column = "sufficient_size" if mask == "sufficient" else "members_mask_size"
        row = con.execute(
            f"SELECT n_samples, {mask}_mask, {size_column}, n_composed, reason, sufficient_reason"
            " FROM composites WHERE model = ? AND dataset = ? AND class = ? AND params_hash = ?"
            " AND seed = ?",
            [model, ds, source, ph, seed],
        ).fetchall()
        if not row:
            skipped.append(
                f"{ds}: no {from_label} composite; run `sigwh compose --model {model}"
                f" --dataset {ds} --seed {seed}`"
            )
            continue
        n_samples, blob, size, n_composed, reason, suff_reason = row[0]
        if n_composed == 0:
            skipped.append(f"{ds}: the {from_label} composite is empty ({reason})")
            continue
        if blob is None or not size:
            why = suff_reason if mask == "sufficient" else "the members' masks are not rfft bins"
            skipped.append(f"{ds}: the {from_label} composite has no {mask} mask ({why or '-'})")
            continue
        todo = con.execute(
            "SELECT clip_id FROM clips WHERE dataset = ? AND clip_id NOT IN ("
            " SELECT clip_id FROM label_transfers WHERE model = ? AND params_hash = ?"
            " AND seed = ? AND signature_class = ? AND mask = ?)"
            " AND clip_id NOT IN (SELECT clip_id FROM original_probs WHERE model = ?"
            " AND top1 NOT IN (SELECT unnest(?::SMALLINT[]))) ORDER BY clip_id",
            [ds, model, ph, seed, source, mask, model, targets],
        ).fetchall()
        signatures.append(
            Signature(ds, n_samples, unpack_mask(blob, n_samples // 2 + 1), [c for (c,) in todo])
        )
    if not signatures:
        raise SigwhError(f"nothing to apply for {model}: " + "; ".join(skipped))
    return TransferPlan(record, labels, rate, ph, seed, source, targets, mask, signatures, skipped)


@dataclass
class TransferSummary:
    run_id: str
    plan: TransferPlan
    counters: write_path.RunCounters = field(default_factory=write_path.RunCounters)
    applied: int = 0
    flipped: int = 0
    status: str = "running"

    def describe(self) -> str:
        src = self.plan.labels[self.plan.from_class]
        to = " or ".join(self.plan.labels[c] for c in self.plan.to_classes)
        head = f"run {self.run_id} {self.status}: {src}'s mask applied to {self.applied} clip(s)"
        if self.applied:
            head += f" called {to}; {self.flipped} ({self.flipped / self.applied:.0%}) now {src}"
        else:
            head += f" (none of the clips checked is called {to})"
        return f"{head} on {self.plan.model.model}; {self.counters.queries:,} model queries"


# The columns of run_transfer's rows, in the order it builds them.
TRANSFER_COLUMNS = (
    "model", "clip_id", "params_hash", "seed", "signature_class", "mask", "run_id", "n_bins",
    "kept_bins", "orig_probs", "orig_top1", "probs", "top1",
)  # fmt: skip


def transferred_signal(samples: np.ndarray, mask: np.ndarray, mask_samples: int) -> np.ndarray:
    """The clip keeping only the bins whose frequency the mask (over mask_samples) keeps."""
    kept = map_mask(mask, mask_samples, len(samples))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    return np.fft.irfft(spectrum * kept, n=len(samples)).astype(np.float32)


def run_transfer(
    path: Path,
    plan: TransferPlan,
    *,
    device: str = "cpu",
    clips_per_batch: int = 32,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> TransferSummary:
    """Apply the plan's masks, storing each batch of clips in one transaction."""

    counters = write_path.RunCounters()
    clf = timed_models([plan.model], plan.labels, device, counters)[plan.model.model]
    with job_run(
        path, lambda run_id: TransferSummary(run_id, plan, counters), counters,
        job="transfer-label", model=plan.model.model, task=plan.model.task,
        dataset=",".join(s.dataset for s in plan.signatures),
        params={"from": plan.labels[plan.from_class], "mask": plan.mask_kind,
                "to": [plan.labels[c] for c in plan.to_classes], "composite_seed": plan.seed},
        params_hash=plan.params_hash, seed=plan.seed, device=device,
    ) as run:  # fmt: skip
        summary, run_id = run.summary, run.run_id
        for sig in plan.signatures:
            for batch in chunks(sig.clip_ids, clips_per_batch):
                with store.opened(path, read_only=True) as con:
                    samples = load_clips(con, batch)
                as_tensor = [torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in samples]
                before = evaluate(clf, as_tensor, batch_size)
                finite = np.isfinite(before).all(axis=1)
                errors = [
                    dict(model=plan.model.model, clip_id=batch[i], stage="transfer original",
                         error=f"model {plan.model.model} returned non-finite probabilities")
                    for i in np.flatnonzero(~finite)
                ]  # fmt: skip
                # the `to` clips, and the `from` clips as controls (the view leaves them out)
                kept_classes = {*plan.to_classes, plan.from_class}
                chosen = [
                    i for i in np.flatnonzero(finite) if int(before[i].argmax()) in kept_classes
                ]
                changed = [transferred_signal(samples[i], sig.mask, sig.n_samples) for i in chosen]
                after = evaluate(clf, [torch.from_numpy(x).to(device) for x in changed], batch_size)
                rows = []
                for i, p in zip(chosen, after, strict=True):
                    if not np.isfinite(p).all():
                        errors.append(
                            dict(model=plan.model.model, clip_id=batch[i],
                                 stage="transfer masked", error="non-finite probabilities")
                        )  # fmt: skip
                        continue
                    n_bins = len(samples[i]) // 2 + 1
                    kept = int(map_mask(sig.mask, sig.n_samples, len(samples[i])).sum())
                    rows.append(
                        (plan.model.model, batch[i], plan.params_hash, plan.seed, plan.from_class,
                         plan.mask_kind, run_id, n_bins, kept, before[i].tolist(),
                         int(before[i].argmax()), p.tolist(), int(p.argmax()))
                    )  # fmt: skip
                    if int(before[i].argmax()) in plan.to_classes:
                        summary.applied += 1
                        summary.flipped += int(p.argmax()) == plan.from_class
                counters.clips_done += len(rows)
                counters.n_errors += len(errors)
                run.clock()
                run.write([write_path.Rows("label_transfers", TRANSFER_COLUMNS, rows)], errors)
                if progress:
                    progress(len(batch))
    return summary
