"""What the engine's explanations are worth, measured from outside the engine.

    python bench/bench_explanations.py                      # mc1 and vc1, 12 clips each
    python bench/bench_explanations.py --models data/zoo/spoof/sp2 --n-clips 6

For each model, `--n-clips` evaluation clips (spread over the labels) are explained with
the default parameters (or `--iterations N`), all in one call. Then, with plain numpy
FFTs (float64) and a direct call of the model, and nothing of the engine's:

- per-bin minimality: for every kept bin of every returned mask, is the mask without that
  bin still sufficient (resp. delta-complete)? Printed: the median share of kept bins
  that are removable alone (0 = 1-minimal per bin), and how many masks are 1-minimal;
- queries per explanation (median) and, counted by a recording wrapper around the
  model, how many model inputs were the same waveform as an earlier one (repeated
  queries; the final verification of each returned mask is deliberate and counted
  apart);
- batch independence: the same clips explained one at a time and in chunks of 4 give
  byte-identical masks and responsibility maps (printed: clips that differ).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from sigwarehouse.freqrex import FreqrexParams, explain

ROOT = Path(__file__).resolve().parents[1]


class Recording:
    """The model, recording a hash of every waveform it is asked about."""

    def __init__(self, model):
        self.model = model
        self.seen: Counter = Counter()

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        # exact bytes: the inverse FFT of a mask gives the same samples in any batch;
        # the empty signal is left out (it is the same for every clip of a length)
        for row in waves.detach().cpu().numpy():
            if row.any():
                self.seen[hashlib.sha1(row.tobytes()).hexdigest()] += 1
        return self.model(waves)


def load_model(path: Path):
    from sigwarehouse.models.labels import model_labels
    from sigwarehouse.models.loader import load_classifier

    return load_classifier(_kind(path), path, model_labels(_kind(path), path))


def load_clips(task: str, n: int) -> list[torch.Tensor]:
    import soundfile as sf

    files = sorted((ROOT / "data" / "corpus" / task / "eval").rglob("*.flac"))
    by_label: dict[str, list[Path]] = {}
    for f in files:
        by_label.setdefault(f.parent.name, []).append(f)
    picked = [f for group in zip(*by_label.values(), strict=False) for f in group][:n]
    return [torch.from_numpy(sf.read(f, dtype="float32")[0].copy()) for f in picked]


def probs_of(model, wave: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Model probabilities of irfft(mask * rfft(wave)) for each mask row (numpy FFTs)."""
    spectrum = np.fft.rfft(wave.astype(np.float64))
    signals = np.fft.irfft(spectrum[None, :] * masks, n=len(wave)).astype(np.float32)
    if len(signals) == 0:
        return np.zeros((0, model.n_labels), dtype=np.float32)
    out = [model(torch.from_numpy(signals[i : i + 64])) for i in range(0, len(signals), 64)]
    return torch.cat(out).numpy()


def removable_share(
    model, wave, mask, c, sigma, params, complete: bool, bins_per_var: int = 1,
    margin: float | None = None,
) -> float:  # fmt: skip
    """Share of the mask's kept variables whose single removal keeps the property. A
    variable is `bins_per_var` consecutive rfft bins (the engine's grouping on long
    clips, `Explanation.bins_per_var`); removing one removes all its bins. `margin`: the
    decision margin the explanation holds by (`Explanation.decision_margin`, wider than
    the parameters' where the model's verdicts depend on the rendering)."""
    variable = np.arange(len(mask)) // bins_per_var
    kept = np.unique(variable[np.asarray(mask, dtype=bool)])
    if kept.size == 0:
        return 0.0
    drops = np.repeat(mask[None, :], kept.size, axis=0)
    drops &= variable[None, :] != kept[:, None]
    p = probs_of(model, wave, drops)
    m = params.decision_margin if margin is None else margin
    top_other = np.where(np.arange(p.shape[1]) == c, -np.inf, p).max(axis=1)
    ok = p[:, c] - top_other >= m
    if complete:
        ok &= p[:, c] >= params.delta * sigma + m
        inv = probs_of(model, wave, ~drops[ok])
        inv_other = np.where(np.arange(inv.shape[1]) == c, -np.inf, inv).max(axis=1)
        ok[ok] = inv_other - inv[:, c] >= m
    return float(ok.mean())


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.tobytes() == b.tobytes()


def bench_model(path: Path, n_clips: int, params: FreqrexParams) -> None:
    model = load_model(path)
    clips = load_clips(path.parent.name, n_clips)
    rec = Recording(model)
    start = time.perf_counter()
    ex = explain(rec, clips, params)
    seconds = time.perf_counter() - start
    n_returned = sum(
        (e.sufficient_mask is not None and e.sufficient_mask.any())
        + 2 * (e.complete_mask is not None)
        for e in ex
    )
    repeats = sum(v - 1 for v in rec.seen.values())

    suff_r, comp_r = [], []
    for wave, e in zip(clips, ex, strict=True):
        w = wave.numpy()
        if e.sufficient_mask is not None and e.sufficient_mask.any():
            suff_r.append(removable_share(model, w, e.sufficient_mask, e.label_index,
                                          e.confidence, params, complete=False,
                                          margin=e.decision_margin))  # fmt: skip
        if e.complete_mask is not None:
            comp_r.append(removable_share(model, w, e.complete_mask, e.label_index,
                                          e.confidence, params, complete=True,
                                          margin=e.decision_margin))  # fmt: skip

    alone = [explain(model, [w], params)[0] for w in clips]
    chunked = [x for k in range(0, len(clips), 4) for x in explain(model, clips[k : k + 4], params)]
    differ = sum(
        not (
            same(a.sufficient_mask, b.sufficient_mask)
            and same(a.complete_mask, b.complete_mask)
            and same(a.responsibility, b.responsibility)
        )
        for trio in zip(ex, alone, chunked, strict=True)
        for a, b in ((trio[0], trio[1]), (trio[0], trio[2]))
    )

    def med(x):
        return f"{np.median(x):.3f}" if x else "-"

    def minimal(shares):
        return f"median {med(shares)}, 1-minimal {sum(r == 0 for r in shares)}/{len(shares)}"

    suff_sizes = [int(e.sufficient_mask.sum()) for e in ex if e.sufficient_mask is not None]
    comp_sizes = [int(e.complete_mask.sum()) for e in ex if e.complete_mask is not None]
    rows = [
        ("median queries per explanation", f"{np.median([e.queries for e in ex]):.0f}"),
        ("empty-signal clips", sum(e.sufficient_reason == "empty-signal-keeps-class" for e in ex)),
        ("complete masks found", len(comp_sizes)),
        ("median non-empty sufficient size", med([n for n in suff_sizes if n])),
        ("median complete size (bins)", med(comp_sizes)),
        ("sufficient: removable alone", minimal(suff_r)),
        ("complete: removable alone", minimal(comp_r)),
        (
            "repeated model inputs",
            f"{repeats} of {sum(rec.seen.values())} (verification re-asks {n_returned})",
        ),  # fmt: skip
        ("batch-dependent explanations", f"{differ} of {2 * len(clips)} comparisons"),
    ]
    print(f"\n{path.parent.name}/{path.stem}: {len(clips)} clips, {seconds:.1f} s")
    for name, value in rows:
        print(f"  {name:<34}{value}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = [ROOT / "data/zoo/genre/mc1.safetensors", ROOT / "data/zoo/emotion/vc1.safetensors"]
    ap.add_argument("--models", nargs="+", type=Path, default=default)
    ap.add_argument("--n-clips", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    params = FreqrexParams()
    if args.iterations:
        params = FreqrexParams(iterations=args.iterations)
    print(f"parameters {params.hash()}: {params.to_dict()}")
    for path in args.models:
        bench_model(path, args.n_clips, params)


def _kind(path) -> str:
    """A zoo model is a Hugging Face directory (kind hf) or the CNN's file (kind zoo)."""
    from pathlib import Path as _Path

    return "hf" if _Path(path).is_dir() else "zoo"


if __name__ == "__main__":
    main()
