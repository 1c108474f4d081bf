"""Does a mutant keep class c? The two tests every phase of the search shares.

Both take probabilities on the host (n, n_labels) and, per row, the target class and
the original confidence sigma. A `margin` makes them strict: "keeps c" means c beats
every other class by at least `margin`, "rejects c" means some other class beats c by
at least `margin`. A row within the margin is neither, so a result accepted here cannot
flip under the float noise of evaluating the same mask in a different batch.
"""

from __future__ import annotations

import numpy as np
import torch


def _target_and_best_other(probs: torch.Tensor, target: np.ndarray) -> tuple:
    p = probs.detach().float().cpu().numpy()
    rows = np.arange(len(p))
    p_target = p[rows, target]
    others = p.copy()
    others[rows, target] = -np.inf
    best_other = others.max(axis=1) if p.shape[1] > 1 else np.full(len(p), -np.inf)
    return p_target, best_other


def keeps(
    probs: torch.Tensor,
    target: np.ndarray,
    sigma: np.ndarray,
    margin: float,
    min_ratio: float = 0.0,
) -> np.ndarray:
    """Bool per row: top-1 is target (by margin) and p[target] >= min_ratio * sigma + margin
    (the second test only when min_ratio > 0)."""
    p_target, best_other = _target_and_best_other(probs, target)
    ok = p_target - best_other >= margin
    if min_ratio > 0:
        ok &= p_target >= min_ratio * np.asarray(sigma) + margin
    return ok


def rejects(probs: torch.Tensor, target: np.ndarray, margin: float) -> np.ndarray:
    """Bool per row: some class other than target beats it by at least margin."""
    p_target, best_other = _target_and_best_other(probs, target)
    return best_other - p_target >= margin


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
    p_target, best_other = _target_and_best_other(probs, target)
    if reject:
        return (best_other - p_target - margin).astype(np.float64)
    out = p_target - best_other - margin
    if min_ratio > 0:
        out = np.minimum(out, p_target - min_ratio * np.asarray(sigma) - margin)
    return out.astype(np.float64)
