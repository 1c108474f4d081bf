"""What several disjoint sufficient explanations cost: queries per explanation against K.

    python bench/bench_multiplicity.py                  # the tone model, the ReX benchmark's clips
    python bench/bench_multiplicity.py --model zoo:data/zoo/emotion/vc1.safetensors \
        --clips-dir data/corpus/emotion/eval --n-clips 6

The clips and model are bench_vs_rex.py's (by default its six synthetic 1 s tone clips
and the tone classifier trained on them). Each K of --ks explains the same clips with the
default freqrex parameters and n_sufficient = K, in one call. Printed per K: the median
and mean model queries per explanation, the mean number of disjoint sufficient masks
found (multiplicity), the median size of each rank's masks, and seconds. Every further
mask is re-checked here with a direct model call on irfft(mask * rfft(wave)) (numpy
FFTs): it must keep the class and be disjoint from the earlier ranks ("valid").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_rex import load_clips, load_model  # noqa: E402

from sigwarehouse.freqrex import FreqrexParams, explain  # noqa: E402


def valid(model, wave: np.ndarray, cls: int, masks: list[np.ndarray]) -> bool:
    """Every mask keeps class `cls` alone and no two share a bin (numpy FFTs, direct call)."""
    used = np.zeros(len(masks[0]), dtype=bool)
    spectrum = np.fft.rfft(wave.astype(np.float64))
    for mask in masks:
        if (mask & used).any():
            return False
        used |= mask
        signal = np.fft.irfft(spectrum * mask, n=len(wave)).astype(np.float32)
        if int(model(torch.from_numpy(signal)[None])[0].argmax()) != cls:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="toy", help="toy or zoo:<checkpoint>")
    ap.add_argument("--clips-dir", default=None, help="audio folder (default: synthetic tones)")
    ap.add_argument("--n-clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--ks", default="1,2,3,4", help="the values of n_sufficient to measure")
    args = ap.parse_args()
    torch.manual_seed(0)
    waves = load_clips(args)
    with tempfile.TemporaryDirectory() as work:
        model = load_model(args.model, waves.shape[1], Path(work))
    tensors = [torch.from_numpy(w) for w in waves]
    print(f"model {args.model}, {len(waves)} clips of {args.seconds} s, {os.cpu_count()} cores")
    print("K  queries(median)  queries(mean)  multiplicity(mean)  median size by rank  valid  s")
    for k in (int(x) for x in args.ks.split(",")):
        start = time.perf_counter()
        out = explain(model, tensors, replace(FreqrexParams(), n_sufficient=k))
        seconds = time.perf_counter() - start
        queries = [e.queries for e in out]
        ranks: dict[int, list[int]] = {}
        multiplicity, ok = [], 0
        for wave, e in zip(waves, out, strict=True):
            masks = [] if e.sufficient_mask is None else [e.sufficient_mask]
            masks += e.extra_sufficient_masks
            multiplicity.append(len(masks))
            for rank, m in enumerate(masks, start=1):
                ranks.setdefault(rank, []).append(int(m.sum()))
            ok += not masks or valid(model, wave, e.label_index, masks)
        sizes = ", ".join(f"{r}: {statistics.median(v):g}" for r, v in sorted(ranks.items()))
        print(
            f"{k}  {statistics.median(queries):>15,.0f}  {np.mean(queries):>13,.0f}  "
            f"{np.mean(multiplicity):>18.2f}  {sizes:<19}  {ok}/{len(out)}  {seconds:.1f}"
        )


if __name__ == "__main__":
    main()
