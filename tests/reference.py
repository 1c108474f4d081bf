"""Independent reference computations the tests check the engine against."""

from __future__ import annotations

import numpy as np
import torch


def fft_signal(wave: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """irfft(mask * rfft(wave)) in float64 with plain torch.fft, at the clip's own length
    (odd lengths included)."""
    spectrum = torch.fft.rfft(wave.double())
    return torch.fft.irfft(spectrum * torch.from_numpy(mask), n=wave.shape[0])


def tally_transfer_counts(con) -> dict[tuple, int]:
    """transfer_counts as plain Python counts them from the stored rows: for each
    sufficient or complete signal whose clip and source model are registered, the key
    (source_model, params_hash, kind, target_model, dataset, mask, same_class, eps_level),
    where eps_level is the least k in 0..100 with min(entropy, log2 n) <= float32(k/100 *
    log2 n), the bound beta compares at eps = k/100, in numpy float32."""
    import math
    from collections import Counter

    n_classes = dict(
        con.execute(
            "SELECT m.model, len(t.labels) FROM models m JOIN tasks t USING (task)"
        ).fetchall()
    )
    dataset = dict(con.execute("SELECT clip_id, dataset FROM clips").fetchall())
    sizes = {
        (m, c, h): {"sufficient": s, "complete": k}
        for m, c, h, s, k in con.execute(
            "SELECT model, clip_id, params_hash, sufficient_size, complete_size FROM explanations"
        ).fetchall()
    }
    tally: Counter = Counter()
    for source, clip, params, kind, target, source_class, top1, bits in con.execute(
        "SELECT source_model, clip_id, params_hash, kind, target_model, source_class, top1,"
        " entropy_bits FROM signal_probs WHERE kind IN ('sufficient', 'complete')"
    ).fetchall():
        if clip not in dataset or source not in n_classes:
            continue
        size = sizes.get((source, clip, params), {}).get(kind)
        mask = "unknown" if size is None else "empty" if size == 0 else "kept"
        most = math.log2(n_classes[source])
        x = min(np.float32(bits), np.float32(most))
        level = next(k for k in range(101) if x <= np.float32(k / 100 * most))
        key = (source, params, kind, target, dataset[clip], mask, top1 == source_class, level)
        tally[key] += 1
    return dict(tally)


def stored_transfer_counts(con) -> dict[tuple, int]:
    """transfer_counts keyed as tally_transfer_counts keys it."""
    return {
        tuple(key): n
        for *key, n in con.execute(
            "SELECT source_model, params_hash, kind, target_model, dataset, mask, same_class,"
            " eps_level, n FROM transfer_counts"
        ).fetchall()
    }
