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


def pcm16_round_trip(x: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """x written as a 16-bit PCM WAV and read back with soundfile (as a user listening
    to a signal, or sending it on, does it)."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def check_renderings(con, load_model) -> dict[str, int]:
    """Every stored mask of the warehouse rebuilt outside the engine, in NumPy float64
    (cast to float32) and after a 16-bit WAV round trip, and given to its model by a
    direct call (load_model(model) -> classifier): sufficient signals keep the class by
    the parameters' margin, complete ones also keep delta * sigma, and their inverses
    lose it. Every signal_probs row equals the float64 rebuild's direct call within
    1e-4. Returns how many masks and probability rows were checked."""
    import json

    rows = con.execute(
        "SELECT e.model, e.clip_id, p.params, e.n_bins, e.orig_class, e.orig_conf,"
        " e.sufficient_mask, e.complete_mask FROM explanations e JOIN freqrex_params p"
        " USING (params_hash) ORDER BY ALL"
    ).fetchall()
    probs_rows = con.execute(
        "SELECT source_model, clip_id, kind, target_model, probs FROM signal_probs"
        " WHERE params_hash IN (SELECT params_hash FROM explanations)"
    ).fetchall()
    ids = sorted({r[1] for r in rows})
    waves = dict(zip(ids, _load_clips(con, ids), strict=True))
    models = {}

    def call(model: str, x: np.ndarray) -> np.ndarray:
        if model not in models:
            models[model] = load_model(model)
        with torch.inference_mode():
            return models[model](torch.from_numpy(x.astype(np.float32))[None])[0].numpy()

    def signal(clip_id: int, mask: np.ndarray) -> np.ndarray:
        wave = waves[clip_id].astype(np.float64)
        return np.fft.irfft(np.fft.rfft(wave) * mask, n=len(wave)).astype(np.float32)

    def unpack(blob: bytes, n: int) -> np.ndarray:
        return np.unpackbits(np.frombuffer(blob, np.uint8), count=n).astype(bool)

    checked = {"masks": 0, "probs": 0}
    masks = {}
    for model, clip_id, params, n_bins, c, sigma, suf, comp in rows:
        params = json.loads(params)
        margin, delta = params["decision_margin"], params["delta"]
        for kind, blob in (("sufficient", suf), ("complete", comp)):
            if blob is None:
                continue
            mask = unpack(blob, n_bins)
            masks[model, clip_id, kind] = mask
            if kind == "complete":
                masks[model, clip_id, "inverse"] = ~mask
            if not mask.any():
                continue
            for x in (signal(clip_id, mask), pcm16_round_trip(signal(clip_id, mask))):
                p = call(model, x)
                assert p[c] - np.delete(p, c).max() >= margin, (model, clip_id, kind, p)
                if kind == "complete":
                    assert p[c] >= delta * sigma + margin, (model, clip_id, p, sigma)
            if kind == "complete":
                for x in (signal(clip_id, ~mask), pcm16_round_trip(signal(clip_id, ~mask))):
                    p = call(model, x)
                    assert np.delete(p, c).max() - p[c] >= margin, (model, clip_id, p)
            checked["masks"] += 1
    for source, clip_id, kind, target, stored in probs_rows:
        mask = masks.get((source, clip_id, kind))
        if mask is None:  # a further sufficient mask (rank 2, ...): not checked here
            continue
        expected = call(target, signal(clip_id, mask))
        np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-4)
        checked["probs"] += 1
    return checked


def _load_clips(con, ids):
    from sigwarehouse.audio import load_clips  # the stored audio, decoded

    return load_clips(con, ids)
