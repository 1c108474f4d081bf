"""What an explanation costs as clips get longer: the same music at 1.5, 3, 10 and 30 s.

    python bench/bench_lengths.py                       # mc1, 3 genre clips, both presets
    python bench/bench_lengths.py --model data/zoo/genre/mc2 --n-clips 5 --lengths 3,30

The first `--n-clips` genre evaluation clips (one per label, in label order) are tiled
to each length, so every length holds the same music. Each preset explains them in one
call per length. Printed per preset and length: the rfft bins and the bins per search
variable (the engine groups bins into variables of at most `variable_hz` Hz on long
clips, so the number of variables stops growing with the length), the median model
queries and seconds per clip, the median sufficient and complete mask sizes in bins,
and the median removable share of the complete masks: the engine's own figure and one
measured here from outside the engine (numpy FFTs and a direct model call; every kept
variable of every complete mask of up to `--check-limit` bins removed alone), both per
variable. Then, per preset, the ratio of the median queries at the longest length to
those at 3 s. Targets (issue 27): that ratio <= 2 for the default preset, and a median
removable share of complete masks <= 0.01 at every length.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from bench_explanations import load_model, removable_share

from sigwarehouse.freqrex import explain
from sigwarehouse.freqrex.params import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def genre_clips(n: int) -> list[np.ndarray]:
    """One clip per genre label (then a second of each, ...), as float32 arrays."""
    by_label: dict[str, list[Path]] = {}
    for f in sorted((ROOT / "data" / "corpus" / "genre" / "eval").rglob("*.flac")):
        by_label.setdefault(f.parent.name, []).append(f)
    picked = [f for group in zip(*by_label.values(), strict=False) for f in group][:n]
    return [sf.read(f, dtype="float32")[0] for f in picked]


def median(values: list) -> float:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "data/zoo/genre/mc1.safetensors"))
    ap.add_argument("--n-clips", type=int, default=3)
    ap.add_argument("--lengths", default="1.5,3,10,30", help="seconds, comma-separated")
    ap.add_argument("--presets", default="quick,default")
    ap.add_argument("--check-limit", type=int, default=12000,
                    help="complete masks of up to this many bins are re-checked")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(Path(args.model))
    music = genre_clips(args.n_clips)
    lengths = [float(x) for x in args.lengths.split(",")]
    print(f"model {args.model}; {len(music)} genre clips tiled to {lengths} s; one thread")
    header = (
        f"{'preset':<8}{'s':>6}{'bins':>8}{'bins/var':>9}{'queries':>9}{'s/clip':>8}"
        f"{'suff bins':>10}{'comp bins':>10}{'comp rem.':>10}{'checked':>9}"
    )
    for preset in args.presets.split(","):
        params = PRESETS[preset]
        print(header)
        medians = {}
        for seconds in lengths:
            n = int(seconds * model.sample_rate)
            waves = [torch.from_numpy(np.resize(x, n)) for x in music]
            start = time.perf_counter()
            out = explain(model, waves, params)
            per_clip = (time.perf_counter() - start) / len(waves)
            checked = []
            for wave, e in zip(waves, out, strict=True):
                m = e.complete_mask
                if m is not None and 0 < m.sum() <= args.check_limit:
                    checked.append(
                        removable_share(
                            model,
                            wave.numpy(),
                            m,
                            e.label_index,
                            e.confidence,
                            params,
                            complete=True,
                            margin=e.decision_margin,
                            bins_per_var=e.bins_per_var,
                        )  # fmt: skip
                    )
            medians[seconds] = median([e.queries for e in out])
            size = [
                None if e.sufficient_mask is None else int(e.sufficient_mask.sum()) for e in out
            ]
            comp = [None if e.complete_mask is None else int(e.complete_mask.sum()) for e in out]
            engine_rem = [e.complete_removable for e in out if e.complete_mask is not None]
            print(
                f"{preset:<8}{seconds:>6g}{out[0].n_vars:>8}{out[0].bins_per_var:>9}"
                f"{medians[seconds]:>9.0f}{per_clip:>8.1f}{median(size):>10.0f}"
                f"{median(comp):>10.0f}{median(engine_rem):>10.3f}{median(checked):>9.3f}",
                flush=True,
            )
            print(f"{'':<14}queries per clip {[e.queries for e in out]}; complete bins {comp};"
                  f" removable (engine) {[round(x, 3) for x in engine_rem]},"
                  f" (checked) {[round(x, 3) for x in checked]}")  # fmt: skip
        if 3.0 in medians:
            longest = max(lengths)
            print(
                f"{preset}: median queries at {longest:g} s / at 3 s ="
                f" {medians[longest] / medians[3.0]:.2f}\n"
            )


if __name__ == "__main__":
    main()
