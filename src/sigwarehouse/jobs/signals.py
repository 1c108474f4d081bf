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


def masked_signal(samples: np.ndarray, mask: np.ndarray, params: dict | None = None) -> np.ndarray:
    """The signal that keeps the mask's variables, in the explanation's space.

    For the paper's space (one variable per rfft bin; `params` None or space "fft") this is
    irfft(mask · rfft(samples)) in NumPy; an STFT-space explanation is rebuilt by
    `freqrex.spectral.signals_for` with its stored parameters.
    """
    if not params or params.get("space", "fft") == "fft":
        spectrum = np.fft.rfft(samples.astype(np.float64))
        return np.fft.irfft(spectrum * mask, n=len(samples)).astype(np.float32)
    import torch  # only STFT-space explanations need torch's STFT

    from sigwarehouse.freqrex.params import FreqrexParams
    from sigwarehouse.freqrex.spectral import signals_for

    rebuilt = FreqrexParams.from_dict(params)
    return signals_for(torch.as_tensor(samples)[None], mask[None], rebuilt)[0].numpy()


def stored_signals(
    samples: np.ndarray,
    n_bins: int,
    sufficient: bytes | None,
    complete: bytes | None,
    params: dict | None = None,
) -> dict[str, np.ndarray]:
    """The sufficient, complete and inverse signals (those that exist) of a clip, from its
    stored packed masks, in NumPy: for analyses and reports that read one at a time."""
    from sigwarehouse.freqrex.spectral import unpack_mask

    out = {}
    if sufficient is not None:
        out["sufficient"] = masked_signal(samples, unpack_mask(sufficient, n_bins), params)
    if complete is not None:
        mask = unpack_mask(complete, n_bins)
        out["complete"] = masked_signal(samples, mask, params)
        out["inverse"] = masked_signal(samples, ~mask, params)
    return out
