"""inaSpeechSegmenter 0.6.8's CNNs (ina-gender, ina-sm, ina-smn): weights' hashes, the port
against independent computations, speed and accuracy on the real-recording sets.

    python bench/bench_ina.py                  # needs the `ina` extra (make setup)
    python bench/bench_ina.py --batch 32 --seconds 4 --threads 1

Per model it prints: the SHA-256 of its weight file (checked by the adapter before use);
the largest difference between the port and tests/ina_reference.py's independent
computations on the set's clips: log-mel against the package's own SIDEKIT front end,
per-patch softmax against a NumPy forward pass of the same file on the same patches, and
clip probabilities against package features -> NumPy patches -> NumPy network -> mean;
how far the answer moves on sparse signals (each of every 5th clip's 1, 4, 16, 64
strongest rfft bins alone, and the whole clip) between the float signal and its 16-bit
WAV round trip (freqrex.renderings.pcm16: 0 by construction) and with one 16-bit step
added or subtracted at random per sample (freqrex.renderings.dithered);
milliseconds per clip through the path ingestion takes (`load_classifier` with the
catalog's label map; one clip per call on the set, and batches of `--batch` clips of
`--seconds` s of white noise, after a warm-up); top-1 accuracy on data/gender/eval or
data/speech-music/eval, all clips and the real recordings only (manifest `source` ends
"real]"). A tie (a clip with no finite patch) is counted wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ina_reference as ref  # noqa: E402

from sigwarehouse import catalog  # noqa: E402
from sigwarehouse.corpus.build import read_manifest  # noqa: E402
from sigwarehouse.freqrex.renderings import dithered, pcm16  # noqa: E402
from sigwarehouse.models import ina  # noqa: E402
from sigwarehouse.models.loader import load_classifier  # noqa: E402

MODELS = {  # catalog id -> (factory, data set)
    "ina-gender": ("gender", "data/gender"),
    "ina-sm": ("speech_music", "data/speech-music"),
    "ina-smn": ("speech_music_noise", "data/speech-music"),
}


def _clips(root: Path) -> list[tuple[np.ndarray, str, bool]]:
    rows = read_manifest(root / "manifest.csv")
    return [
        (sf.read(root / r["path"], dtype="float32")[0], r["label"], r["source"].endswith("real]"))
        for r in rows
    ]


def _port_checks(factory: str, clips) -> tuple[float, float, float]:
    """Max |diff| of log-mel, per-patch softmax and clip probabilities (see the doc)."""
    model = getattr(ina, factory)()
    sidekit = ref.load_sidekit(ina.package_dir())
    forward = ref.np_network(model.path)
    feats = patch = clip = 0.0
    for wave, _, _ in clips:
        mine = ina.log_mel(torch.from_numpy(wave)[None])[0].numpy()
        theirs = ref.package_mspec(sidekit, wave)
        ok = np.isfinite(theirs)
        assert np.array_equal(ok, np.isfinite(mine))
        feats = max(feats, float(np.abs(mine[ok] - theirs[ok]).max()))
        p = ina.patches(torch.from_numpy(mine)[None], model.n_mels)[0]
        p = p[torch.isfinite(p).all(dim=2).all(dim=1)][::4].float()
        with torch.inference_mode():
            got = model.network()(p).numpy()
        patch = max(patch, float(np.abs(got - forward(p.numpy())).max()))
        expected = ref.clip_probs(sidekit, forward, wave, model.n_mels)
        clip = max(clip, float(np.abs(model(wave[None])[0] - expected).max()))
    return feats, patch, clip


def _rendering_moves(model, clips) -> tuple[float, float, int]:
    """Max |diff| float vs 16-bit round trip, max |diff| under +-1 step, and the number of
    sparse signals (see the doc)."""
    round_trip = step = 0.0
    n = 0
    for wave, _, _ in clips[::5]:
        spectrum = np.fft.rfft(wave.astype(np.float64))
        order = np.argsort(-np.abs(spectrum))
        signals = []
        for k in (1, 4, 16, 64, len(spectrum)):
            mask = np.zeros(len(spectrum))
            mask[order[:k]] = 1.0
            signals.append(np.fft.irfft(spectrum * mask, n=len(wave)).astype(np.float32))
        signals = np.stack(signals)
        probs = model(signals)
        round_trip = max(round_trip, float(np.abs(probs - model(pcm16(signals, 16000))).max()))
        step = max(step, float(np.abs(probs - model(dithered(signals))).max()))
        n += len(signals)
    return round_trip, step, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shipped = catalog.load(REPO / "ingest")
    noise = np.random.default_rng(0).standard_normal((args.batch, int(args.seconds * 16000)))
    noise = torch.from_numpy((0.1 * noise).astype(np.float32))
    print(f"torch threads: {torch.get_num_threads()}")
    for model_id, (factory, data) in MODELS.items():
        entry = shipped.models[model_id]
        labels = shipped.tasks[entry.task].labels
        clf = load_classifier("python", entry.ref, labels, entry.label_map, name=model_id)
        clips = _clips(REPO / data)
        clf(torch.from_numpy(clips[0][0])[None])  # warm-up
        start = time.perf_counter()
        probs = [clf(torch.from_numpy(w)[None])[0].numpy() for w, _, _ in clips]
        per_clip = (time.perf_counter() - start) / len(clips) * 1000
        clf(noise[:1])  # warm-up at this length
        start = time.perf_counter()
        clf(noise)
        per_noise = (time.perf_counter() - start) / len(noise) * 1000
        right = [
            bool(p.max() > p.min()) and labels[int(np.argmax(p))] == label
            for p, (_, label, _) in zip(probs, clips, strict=True)
        ]
        real = [ok for ok, (_, _, is_real) in zip(right, clips, strict=True) if is_real]
        feats, patch, clip = _port_checks(factory, clips)
        round_trip, step, n_sparse = _rendering_moves(clf.obj, clips)
        weights = clf.obj.weights
        mean_s = np.mean([len(w) for w, _, _ in clips]) / 16000
        print(f"{model_id} ({entry.task}, {data}/eval; labels {clf.obj.labels})")
        print(f"  sha256 {weights}: {ina.sha256(ina.package_dir() / weights)}")
        print(f"  log-mel vs the package's SIDEKIT front end: max |diff| = {feats:.2e}")
        print(f"  per-patch softmax vs NumPy forward pass: max |diff| = {patch:.2e}")
        print(f"  clip probabilities vs the independent pipeline: max |diff| = {clip:.2e}")
        print(
            f"  sparse signals (n={n_sparse}): max |diff| vs their 16-bit WAV round trip "
            f"{round_trip:.2e}, under +-1 step per sample {step:.3f}"
        )
        print(
            f"  {per_clip:.0f} ms per clip (1 clip per call, {mean_s:.2f} s mean); "
            f"{per_noise:.0f} ms per clip in batches of {len(noise)} {args.seconds:g} s clips"
        )
        print(
            f"  accuracy {sum(right)}/{len(right)} = {sum(right) / len(right):.3f} all clips; "
            f"{sum(real)}/{len(real)} = {sum(real) / len(real):.3f} real recordings"
        )


if __name__ == "__main__":
    main()
