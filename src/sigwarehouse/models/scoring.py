"""A classifier's probabilities on many waveforms of any lengths, and their entropy.

What every job asks of a loaded model: `evaluate` batches the waveforms that share a
length (a forward pass needs equal lengths), and `entropy_bits` is the figure stored
beside each row of probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch  # torch: only to evaluate; entropy_bits runs without

    from sigwarehouse.models.base import AudioClassifier


def entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of probabilities."""
    p = np.clip(probs.astype(np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def evaluate(clf: AudioClassifier, waves: list[torch.Tensor], batch_size: int) -> np.ndarray:
    """Probabilities (n, labels) of 1-D waves of any lengths: equal lengths share a batch."""
    import torch  # torch: only to evaluate; entropy_bits runs without

    out = np.zeros((len(waves), clf.n_labels), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_length.setdefault(w.shape[-1], []).append(i)
    for idx in by_length.values():
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            probs = clf(torch.stack([waves[i] for i in part]))
            out[part] = probs.float().cpu().numpy()
    return out
