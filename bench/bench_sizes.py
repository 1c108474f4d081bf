"""Bytes an explanation takes in the warehouse, by clip length: is a 30 s study shareable?

    python bench/bench_sizes.py [--model data/zoo/genre/mc2.safetensors] [--clips 3]

Explains --clips genre clips cut or tiled to 1 s, 3 s and 30 s (music, so the 30 s clips
are music too) with the `quick` preset, and stores each result as ingestion does: the
responsibility map as zlib-compressed float16 (`signals.encode_responsibility`), the
sufficient and complete masks as packed bits (`freqrex.spectral.pack_mask`). Prints, per
length, the rfft bins and the median bytes of each part per clip·model, and what a
GTZAN-size study (1,000 clips x 5 models) of that length takes: explanations only, and
with its signal_probs rows (3 signals x 5 models per explanation at ~25 bytes a row, as
bench/bench_views.py measures). Target: under 1 GB for 30 s clips.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sigwarehouse.freqrex import explain
from sigwarehouse.freqrex.params import PRESETS
from sigwarehouse.freqrex.spectral import pack_mask
from sigwarehouse.models.labels import model_labels
from sigwarehouse.models.loader import load_classifier
from sigwarehouse.signals import encode_responsibility

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
STUDY_CLIPS, STUDY_MODELS, SIGNAL_ROW_BYTES = 1000, 5, 25


def clips_of(seconds: float, n: int) -> list[torch.Tensor]:
    """n genre clips (one per label first), tiled or cut to `seconds`."""
    labels = sorted((ROOT / "data/corpus/genre/eval").iterdir())
    files = [sorted(d.glob("*.flac"))[0] for d in labels][:n]
    out = []
    for f in files:
        x = sf.read(f, dtype="float32")[0]
        length = int(seconds * RATE)
        out.append(torch.from_numpy(np.resize(x, length).astype(np.float32)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "data/zoo/genre/mc2.safetensors"))
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seconds", default="1,3,30")
    args = ap.parse_args()
    kind = "hf" if Path(args.model).is_dir() else "zoo"
    model = load_classifier(kind, args.model, model_labels(kind, args.model))
    print(f"model {args.model}, {args.clips} clips per length, preset quick")
    print(
        "length  bins     responsibility  sufficient  complete  per clip·model  "
        "study (expl.)  study (+signals)"
    )
    for seconds in (float(s) for s in args.seconds.split(",")):
        start = time.perf_counter()
        results = explain(model, clips_of(seconds, args.clips), PRESETS["quick"])
        resp = [len(encode_responsibility(e.responsibility)) for e in results]
        suff = [len(pack_mask(e.sufficient_mask)) for e in results if e.sufficient_mask is not None]
        comp = [len(pack_mask(e.complete_mask)) for e in results if e.complete_mask is not None]
        per = (
            statistics.median(resp)
            + statistics.median(suff or [0])
            + statistics.median(comp or [0])
        )
        study = per * STUDY_CLIPS * STUDY_MODELS
        signals = STUDY_CLIPS * STUDY_MODELS * 3 * STUDY_MODELS * SIGNAL_ROW_BYTES
        print(
            f"{seconds:>4g} s  {results[0].n_vars:>7,}  {statistics.median(resp):>14,.0f}  "
            f"{statistics.median(suff or [0]):>10,.0f}  {statistics.median(comp or [0]):>8,.0f}  "
            f"{per:>14,.0f}  {study / 1e6:>10,.1f} MB  {(study + signals) / 1e6:>13,.1f} MB"
            f"   ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
