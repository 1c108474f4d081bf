"""The signals an explanation defines (sufficient, complete, inverse), every model's
probabilities on them, masks carried across clip lengths, and the compact storage of
responsibility maps.

The jobs build the signals in torch on the model's device (`derived_signals`); the
analyses and the report rebuild one at a time from stored masks in NumPy
(`masked_signal`, `stored_signals`). Both follow docs/definitions.md: the removed variables are
set to 0.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.models.scoring import entropy_bits, evaluate

if TYPE_CHECKING:
    import torch

    from sigwarehouse.models.base import AudioClassifier

SIGNAL_KINDS = ("sufficient", "complete", "inverse")


def sufficient_kind(rank: int) -> str:
    """The signal kind of a rank-`rank` sufficient mask: 'sufficient' for the first (so
    warehouses made with one sufficient mask per clip read as before), 'sufficient-<rank>'
    for the further disjoint ones (n_sufficient > 1)."""
    return "sufficient" if rank == 1 else f"sufficient-{rank}"


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
    further: list[np.ndarray] | tuple = (),
) -> list[Signal]:
    """The sufficient, complete and inverse signals of one clip (those that exist), and
    one signal per further sufficient mask (ranks 2, 3, …; kind `sufficient_kind(rank)`)."""
    from sigwarehouse.freqrex.spectral import signals_for  # torch: the spectral module imports it

    masks = {}
    if sufficient is not None:
        masks["sufficient"] = sufficient
    if complete is not None:
        masks["complete"] = complete
        masks["inverse"] = ~complete
    for rank, mask in enumerate(further, start=2):
        masks[sufficient_kind(rank)] = mask
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

    from sigwarehouse.freqrex.spectral import signals_for  # torch: the spectral module imports it

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
    from sigwarehouse.freqrex.spectral import unpack_mask  # torch: the spectral module imports it

    out = {}
    if sufficient is not None:
        out["sufficient"] = masked_signal(samples, unpack_mask(sufficient, n_bins), params)
    if complete is not None:
        mask = unpack_mask(complete, n_bins)
        out["complete"] = masked_signal(samples, mask, params)
        out["inverse"] = masked_signal(samples, ~mask, params)
    return out


def map_mask(mask: np.ndarray, n_from: int, n_to: int) -> np.ndarray:
    """A mask over the rfft bins of an n_from-sample signal, mapped onto an n_to-sample one.

    Bins are matched by frequency in Hz (bin j of an n-sample signal is j·rate/n). A target
    bin is kept when any source bin within half a target bin of its frequency is kept;
    where the target grid is finer than the source's (no source bin that close), the
    nearest source bin decides. Equal lengths return the mask unchanged.
    """
    src = np.asarray(mask, dtype=bool)
    if src.shape != (n_from // 2 + 1,):
        raise ValueError(f"a mask of {src.shape} bins is not over {n_from} samples' rfft")
    if n_from == n_to:
        return src.copy()
    ratio = n_from / n_to  # source bins per target bin
    centre = np.arange(n_to // 2 + 1) * ratio
    lo = np.clip(np.ceil(centre - ratio / 2), 0, len(src)).astype(int)
    hi = np.clip(np.ceil(centre + ratio / 2), 0, len(src)).astype(int)
    kept = np.concatenate(([0], np.cumsum(src)))
    out = (kept[hi] - kept[lo]) > 0
    empty = hi <= lo
    nearest = np.clip(np.rint(centre).astype(int), 0, len(src) - 1)
    out[empty] = src[nearest[empty]]
    return out


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """x cropped at the end, or zero-padded at the end, to n samples."""
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(x))] = x[:n]
    return out
