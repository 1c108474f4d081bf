"""The signals an explanation defines (sufficient, complete, inverse), every model's
probabilities on them, and the compact storage of responsibility maps.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.jobs.models import entropy_bits, evaluate

if TYPE_CHECKING:
    import torch

    from sigwarehouse.models.base import AudioClassifier

SIGNAL_KINDS = ("sufficient", "complete", "inverse")


@dataclass
class Signal:
    """One derived signal: source model's sufficient/complete/inverse signal of a clip."""

    source: str
    clip_id: int
    source_class: int
    kind: str
    wave: torch.Tensor


def derived_signals(
    source: str,
    clip_id: int,
    source_class: int,
    wave: torch.Tensor,
    sufficient: np.ndarray | None,
    complete: np.ndarray | None,
    params: FreqrexParams,
) -> list[Signal]:
    """The sufficient, complete and inverse signals of one clip (those that exist)."""
    from sigwarehouse.freqrex.spectral import signals_for

    masks = {}
    if sufficient is not None:
        masks["sufficient"] = sufficient
    if complete is not None:
        masks["complete"] = complete
        masks["inverse"] = ~complete
    if not masks:
        return []
    stacked = signals_for(wave.expand(len(masks), -1), np.stack(list(masks.values())), params)
    return [
        Signal(source, clip_id, source_class, k, w) for k, w in zip(masks, stacked, strict=True)
    ]


def evaluate_signals(
    signals: list[Signal],
    models: dict[str, AudioClassifier],
    params_hash: str,
    batch_size: int,
    run_id: str,
) -> tuple[list[tuple], list[dict]]:
    """signal_probs rows of every signal on every model, in large batches, and the errors.

    A model that gives NaN on a signal gets an error row instead of a probability row.
    """
    rows, errors = [], []
    if not signals:
        return rows, errors
    for target, clf in models.items():
        probs = evaluate(clf, [s.wave for s in signals], batch_size)
        finite = np.isfinite(probs).all(axis=1)
        ent = entropy_bits(np.nan_to_num(probs))
        for s, p, h, ok in zip(signals, probs, ent, finite, strict=True):
            if not ok:
                errors.append(
                    dict(model=target, clip_id=s.clip_id, stage=f"evaluate {s.source} {s.kind}",
                         error=f"model {target} returned non-finite probabilities")
                )  # fmt: skip
                continue
            rows.append(
                (s.source, s.clip_id, params_hash, s.kind, target, s.source_class,
                 p.tolist(), int(p.argmax()), float(h), run_id)
            )  # fmt: skip
    return rows, errors


def encode_responsibility(values: np.ndarray) -> bytes:
    """Responsibility per variable as zlib-compressed float16 (maps are piecewise constant
    over bands, so this is ~100x smaller than the raw floats)."""
    return zlib.compress(np.asarray(values, dtype="<f2").tobytes(), 6)


def decode_responsibility(blob: bytes) -> np.ndarray:
    """The float32 responsibility map that encode_responsibility stored."""
    return np.frombuffer(zlib.decompress(blob), dtype="<f2").astype(np.float32)
