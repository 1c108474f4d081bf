"""The shipped voice-activity detectors: accuracy on the speech set, and their speed.

    python bench/bench_vad.py                  # every detector, batches of 64 1-s clips
    python bench/bench_vad.py --batch 128 --seconds 3 --threads 1

Scores every clip of data/speech/eval through the same path ingestion takes
(`load_classifier("python", ...)`, top-1 against the folder label), then times each
detector on batches of `--batch` clips of `--seconds` s of white noise at -20 dBFS (a
VAD's cost depends on the length, not on what it hears), after one warm-up batch, and
prints clips per second. The search asks a model about batches of masked signals, so
this is the figure that sets how long an explanation takes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sigwarehouse.models.loader import load_classifier

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ("silero", "webrtc", "earshot")
LABELS = ["speech", "non-speech"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3, help="timed batches per detector")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = sorted((ROOT / "data/speech/eval").glob("*/*.flac"))
    clips = [(torch.from_numpy(sf.read(f, dtype="float32")[0]), f.parent.name) for f in files]
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal((args.batch, int(args.seconds * 16000)))
    batch = torch.from_numpy(noise.astype(np.float32))
    print(f"torch threads: {torch.get_num_threads()}; {len(clips)} clips in data/speech/eval")
    for name in DETECTORS:
        clf = load_classifier("python", f"sigwarehouse.models.vad:{name}", LABELS, name=name)
        right = sum(LABELS[int(clf(w[None]).argmax())] == label for w, label in clips)
        clf(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeat):
            clf(batch)
        rate = args.repeat * args.batch / (time.perf_counter() - start)
        print(
            f"{name:8s} accuracy {right}/{len(clips)} = {right / len(clips):.2f}   "
            f"{rate:8.0f} clips/s ({args.seconds:g} s clips, batches of {args.batch})"
        )


if __name__ == "__main__":
    main()
