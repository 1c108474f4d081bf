"""How far a model's answer moves under renderings of a signal that should not matter.

    python bench/bench_noise_floor.py                      # every zoo model and detector
    python bench/bench_noise_floor.py --models vc1,earshot --n-clips 4

For each model, the first `--n-clips` evaluation clips of its task (one per label in
turn) give sparse signals like the ones explanations keep: each clip's k strongest rfft
bins alone, for k in 1, 4, 16 and 64, and the whole clip. Each signal is rendered the four
ways a stored mask may meet (freqrex.renderings): the float32 transform, the float64
transform cast to float32 (the reference), a 16-bit PCM WAV round trip, and that round
trip with one least significant bit added or subtracted at random per sample. Printed
per model: the largest change of any class probability from the reference, over all
signals, and the median per signal, and the share of signals whose top-1 class differs
between any two renderings. That largest change is the model's rendering noise floor: a
decision margin below it lets a stored verdict depend on how the signal is rebuilt
(issue: verdicts that hold however the signal is rebuilt). Nothing is stored.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from bench_explanations import load_clips, load_model  # bench/ is on the path of its scripts

from sigwarehouse.freqrex.renderings import dithered, float64_signals, pcm16
from sigwarehouse.freqrex.spectral import FFTSpace

ROOT = Path(__file__).resolve().parents[1]
KEPT = (1, 4, 16, 64)  # strongest bins kept alone
DETECTORS = ("silero", "webrtc", "earshot")


def models(names: list[str] | None) -> list[tuple[str, str, object]]:
    """(name, task, classifier) of the zoo models and the speech detectors asked for."""
    out = []
    for task_dir in sorted(p for p in (ROOT / "data" / "zoo").iterdir() if p.is_dir()):
        for entry in sorted(task_dir.iterdir()):
            name = entry.name.split(".")[0]
            if entry.suffix == ".json" or (names and name not in names):
                continue
            if entry.suffix in ("", ".safetensors") and not any(n == name for n, _, _ in out):
                out.append((name, task_dir.name, load_model(entry)))
    for name in DETECTORS:
        if names is None or name in names:
            from sigwarehouse.models.python import PythonClassifier  # the [vad] extra
            from sigwarehouse.models.vad import LABELS

            out.append((name, "speech", PythonClassifier(f"sigwarehouse.models.vad:{name}",
                                                         list(LABELS))))  # fmt: skip
    return out


def speech_clips(n: int) -> list[torch.Tensor]:
    import soundfile as sf

    files = sorted((ROOT / "data" / "speech" / "eval").rglob("*.flac"))
    by_label: dict[str, list[Path]] = {}
    for f in files:
        by_label.setdefault(f.parent.name, []).append(f)
    picked = [f for group in zip(*by_label.values(), strict=False) for f in group][:n]
    return [torch.from_numpy(sf.read(f, dtype="float32")[0].copy()) for f in picked]


def renderings(wave: torch.Tensor, rate: int) -> dict[str, np.ndarray]:
    """(signals, samples) per rendering: the clip's k strongest bins alone, and the clip."""
    space = FFTSpace(wave.shape[0])
    magnitude = torch.fft.rfft(wave.double()).abs()
    order = torch.argsort(magnitude, descending=True)
    masks = torch.zeros((len(KEPT) + 1, space.n_vars), dtype=torch.bool)
    for row, k in enumerate(KEPT):
        masks[row, order[:k]] = True
    masks[-1] = True
    waves = wave[None].expand(len(masks), -1)
    single = space.inverse(space.forward(waves.float()) * masks).numpy()
    exact = float64_signals(space, waves, masks).numpy()
    written = pcm16(exact, rate)
    return {"float32": single, "float64": exact, "pcm16": written,
            "pcm16+lsb": pcm16(dithered(written), rate)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--n-clips", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.models.split(",") if args.models else None
    print(f"{'model':8s} {'task':8s} {'signals':>7s} {'max move':>9s} {'median':>8s} "
          f"{'top-1 differs':>13s} {'s':>6s}")  # fmt: skip
    for name, task, clf in models(names):
        started = time.perf_counter()
        clips = speech_clips(args.n_clips) if task == "speech" else load_clips(task, args.n_clips)
        moves, flips = [], 0
        with torch.inference_mode():
            for wave in clips:
                rendered = renderings(wave, getattr(clf, "sample_rate", None) or 16000)
                probs = {r: clf(torch.from_numpy(x)).float().numpy() for r, x in rendered.items()}
                ref = probs["float64"]
                move = np.max([np.abs(p - ref).max(axis=1) for p in probs.values()], axis=0)
                moves += move.tolist()
                tops = np.stack([p.argmax(axis=1) for p in probs.values()])
                flips += int((tops != tops[0]).any(axis=0).sum())
        print(f"{name:8s} {task:8s} {len(moves):7d} {max(moves):9.2e} {np.median(moves):8.1e} "
              f"{flips / len(moves):13.2f} {time.perf_counter() - started:6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
