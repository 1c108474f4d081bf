"""Searching from a model's rendering noise floor: what it costs and what it buys.

    python bench/bench_floor_margin.py                       # vc1, vc4, sp2, sp3, earshot, webrtc
    python bench/bench_floor_margin.py --models earshot --n-clips 6

For each model, its floor is measured as `sigwh ingest` measures it (noise_floor.py) on
the first 4 evaluation clips of its task, and the next `--n-clips` clips (one label after
another) are explained twice with the default preset: from the parameters' own margin
(1e-4, as engine 7 did) and from the floor (engine 8). Every returned mask, sufficient,
complete and the complete mask's inverse, is then rebuilt four ways (the float32
transform, the float64 transform cast to float32, a 16-bit WAV round trip, and that
round trip with one least significant bit added or subtracted per sample, three seeds)
and given to the model by a direct call; a mask reproduces in a rendering when its
verdict (keeps the class by the margin; the complete one also delta * sigma; the
inverse loses it) holds there by the parameters' own margin. The engine verifies the
first three renderings itself; the dithered ones it never sees, so they show whether a
verdict survives a change no listener hears.

Printed per model and margin: the floor, median queries per clip, masks found, median
mask sizes, and the share of masks that reproduce in each rendering.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_explanations import load_clips  # bench/ is on the path of its scripts
from bench_noise_floor import ROOT, models, speech_clips

from sigwarehouse import noise_floor
from sigwarehouse.freqrex import FreqrexParams, explain
from sigwarehouse.freqrex.renderings import dithered, pcm16
from sigwarehouse.freqrex.spectral import FFTSpace
from sigwarehouse.freqrex.verdict import keeps, rejects

DEFAULT_MODELS = "vc1,vc4,sp2,sp3,earshot,webrtc"
DITHER_SEEDS = (1, 2, 3)


def renderings(wave: np.ndarray, mask: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    """The masked signal (1, samples) in each rendering."""
    spectrum = np.fft.rfft(wave.astype(np.float64))
    exact = np.fft.irfft(spectrum * mask, n=len(wave)).astype(np.float32)[None]
    space = FFTSpace(len(wave))
    single = space.inverse(space.forward(torch.from_numpy(wave)[None]) * torch.from_numpy(mask))
    written = pcm16(exact, rate)
    out = {"float32": single.numpy(), "float64": exact, "pcm16": written}
    for seed in DITHER_SEEDS:
        out[f"pcm16+lsb{seed}"] = pcm16(dithered(written, seed), rate)
    return out


def reproduces(clf, wave, ex, params) -> dict[str, list[bool]]:
    """Per rendering group: whether each of the explanation's masks keeps its verdict."""
    rate = getattr(clf, "sample_rate", None) or 16000
    c, sigma, m = np.array([ex.label_index]), np.array([ex.confidence]), params.decision_margin
    checks = []
    if ex.sufficient_mask is not None and ex.sufficient_mask.any():
        checks.append((ex.sufficient_mask, lambda p: keeps(p, c, sigma, m)[0]))
    if ex.complete_mask is not None and ex.complete_mask.any():
        checks.append((ex.complete_mask, lambda p: keeps(p, c, sigma, m, params.delta)[0]))
        checks.append((~ex.complete_mask, lambda p: rejects(p, c, m)[0]))
    out: dict[str, list[bool]] = {}
    for mask, holds in checks:
        for name, x in renderings(wave, np.asarray(mask, dtype=bool), rate).items():
            with torch.inference_mode():
                p = clf(torch.from_numpy(x)).float()
            group = "pcm16+lsb" if name.startswith("pcm16+lsb") else name
            out.setdefault(group, []).append(bool(holds(p)))
    return out


def _median_size(masks) -> str:
    sizes = [int(mk.sum()) for mk in masks if mk is not None]
    return f"{np.median(sizes):.0f}" if sizes else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--n-clips", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = FreqrexParams()
    n_floor = noise_floor.N_CLIPS
    print(f"{'model':8s} {'margin':>9s} {'queries':>8s} {'suff':>5s} {'comp':>5s} "
          f"{'suff bins':>9s} {'comp bins':>9s}  reproduce: float32 float64 pcm16 pcm16+lsb"
          f" {'s':>6s}")  # fmt: skip
    for name, task, clf in models(args.models.split(",")):
        pick = speech_clips if task == "speech" else (lambda n, t=task: load_clips(t, n))
        clips = pick(n_floor + args.n_clips)
        floor = noise_floor.summary(*noise_floor.signal_moves(clf, clips[:n_floor]))
        explained = clips[n_floor:]
        for margin in (None, floor["noise_floor"]):
            started = time.perf_counter()
            exs = []
            for wave in explained:  # one by one: clips of different lengths
                exs += explain(clf, [wave], params, margin=margin)
            seconds = time.perf_counter() - started
            held: dict[str, list[bool]] = {}
            for wave, ex in zip(explained, exs, strict=True):
                for group, ok in reproduces(clf, wave.numpy(), ex, params).items():
                    held.setdefault(group, []).extend(ok)
            shares = "  ".join(
                f"{np.mean(held.get(g, [np.nan])):.2f}({len(held.get(g, []))})"
                for g in ("float32", "float64", "pcm16", "pcm16+lsb")
            )
            shown = params.decision_margin if margin is None else margin
            print(
                f"{name:8s} {shown:9.2g} {np.median([e.queries for e in exs]):8.0f} "
                f"{sum(e.sufficient_mask is not None for e in exs):5d} "
                f"{sum(e.complete_mask is not None for e in exs):5d} "
                f"{_median_size([e.sufficient_mask for e in exs]):>9s} "
                f"{_median_size([e.complete_mask for e in exs]):>9s}  {shares} {seconds:6.1f}"
            )
        print(
            f"{name:8s} floor {floor['noise_floor']:.3g} (max move {floor['max_move']:.3g}, "
            f"class changed on {floor['top1_differs']:.0%} of {floor['n_signals']} signals)"
        )


if __name__ == "__main__":
    assert ROOT.exists()
    main()
