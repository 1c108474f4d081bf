"""Does a mutant keep class c? The two tests every phase of the search shares.

Both take probabilities on the host (n, n_labels) and, per row, the target class and
the original confidence sigma. A `margin` makes them strict: "keeps c" means c beats
every other class by at least `margin`, "rejects c" means some other class beats c by
at least `margin`. A row within the margin is neither, so a result accepted here cannot
flip under the float noise of evaluating the same mask in a different batch.
A row with a NaN or an infinity in it is neither kept nor rejected (and has slack -inf):
a model's non-finite answer is no evidence either way.
"""

from __future__ import annotations

import numpy as np
import torch


def _target_and_best_other(probs: torch.Tensor, target: np.ndarray) -> tuple:
    """(p[target], the best other class's p, whether the row is all finite) per row."""
    p = probs.detach().float().cpu().numpy()
    rows = np.arange(len(p))
    p_target = p[rows, target]
    others = p.copy()
    others[rows, target] = -np.inf
    best_other = others.max(axis=1) if p.shape[1] > 1 else np.full(len(p), -np.inf)
    return p_target, best_other, np.isfinite(p).all(axis=1)


def keeps(
    probs: torch.Tensor,
    target: np.ndarray,
    sigma: np.ndarray,
    margin: float,
    min_ratio: float = 0.0,
) -> np.ndarray:
    """Bool per row: top-1 is target (by margin) and p[target] >= min_ratio * sigma + margin
    (the second test only when min_ratio > 0)."""
    p_target, best_other, finite = _target_and_best_other(probs, target)
    ok = finite & (p_target - best_other >= margin)
    if min_ratio > 0:
        ok &= p_target >= min_ratio * np.asarray(sigma) + margin
    return ok


def rejects(probs: torch.Tensor, target: np.ndarray, margin: float) -> np.ndarray:
    """Bool per row: some class other than target beats it by at least margin."""
    p_target, best_other, finite = _target_and_best_other(probs, target)
    return finite & (best_other - p_target >= margin)


def slack(
    probs: torch.Tensor,
    target: np.ndarray,
    sigma: np.ndarray,
    margin: float,
    min_ratio: float = 0.0,
    reject: bool = False,
) -> np.ndarray:
    """Float per row: how far the row is inside its test (`keeps`, or `rejects` when
    `reject`), the smallest of the test's conditions; negative outside. Used to *order*
    candidate removals (the one leaving most slack first); decisions stay with the
    exact tests above."""
    p_target, best_other, finite = _target_and_best_other(probs, target)
    if reject:
        out = best_other - p_target - margin
    else:
        out = p_target - best_other - margin
        if min_ratio > 0:
            out = np.minimum(out, p_target - min_ratio * np.asarray(sigma) - margin)
    return np.where(finite, out, -np.inf).astype(np.float64)
