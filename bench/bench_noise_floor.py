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
between any two renderings, and the 0.9 quantile of the moves: the noise floor `sigwh
ingest` stores and starts each model's search from (src/sigwarehouse/noise_floor.py,
which does the measuring here too). A decision margin below the moves lets a stored
verdict depend on how the signal is rebuilt. Nothing is stored.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_explanations import load_clips, load_model  # bench/ is on the path of its scripts

from sigwarehouse import noise_floor

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--n-clips", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.models.split(",") if args.models else None
    print(f"{'model':8s} {'task':8s} {'signals':>7s} {'max move':>9s} {'floor':>9s} "
          f"{'median':>8s} {'top-1 differs':>13s} {'s':>6s}")  # fmt: skip
    for name, task, clf in models(names):
        started = time.perf_counter()
        clips = speech_clips(args.n_clips) if task == "speech" else load_clips(task, args.n_clips)
        # the measurement `sigwh ingest` stores, here on the first --n-clips clips
        f = noise_floor.summary(*noise_floor.signal_moves(clf, clips))
        print(f"{name:8s} {task:8s} {f['n_signals']:7d} {f['max_move']:9.2e} "
              f"{f['noise_floor']:9.2e} {f['median_move']:8.1e} {f['top1_differs']:13.2f} "
              f"{time.perf_counter() - started:6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
