"""voice2gender and the ina CNNs: ms per clip-query of the adapters against their previous
code path (re-implemented below, labelled OLD), and how far the two paths' answers are.

    python bench/bench_pretrained_speed.py              # needs the `pretrained` and `ina` extras
    python bench/bench_pretrained_speed.py --queries 64 --clips 10 --rounds 2

voice2gender: the OLD features are the adapter's before the speed-up (numpy complex FFT
then inverse FFT for the cepstrum, frames copied by fancy indexing, a Hann window built per
call). Equivalence on every clip of data/gender/eval and on sparse masked versions of each
(its 1, 4, 16, 64 strongest rfft bins alone, and two random masks keeping 1/8 and 1/2 of
the bins): the largest relative feature difference, whether both paths refuse the same
signals, the largest probability difference and the number of top-1 changes. Speed: the
search's calls, batches of `--queries` random masks of a clip, through the whole adapter
(16 -> 44.1 kHz, features, booster), OLD and new alternating per clip on the same batches.

ina (gender, speech_music, speech_music_noise): the OLD network runs each
BatchNormalization as its own multiply-add pass and relu out of place; the new one folds
it into the Conv2D or Dense before it. Equivalence: the largest difference of the clip
probabilities (new vs OLD, and each vs tests/ina_reference.py's NumPy forward pass of the
same file on the same patches) on every clip of data/gender/eval (gender) or
data/speech-music/eval (the other two). Speed: one clip per call, as ingestion calls it,
OLD and new alternating on the same clips.

Every figure is on one torch/BLAS thread (OMP_NUM_THREADS=1 and torch.set_num_threads(1)).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ina_reference as ref  # noqa: E402

from sigwarehouse.corpus.build import read_manifest  # noqa: E402
from sigwarehouse.models import ina  # noqa: E402
from sigwarehouse.models import voice2gender as v2g  # noqa: E402

EPS = v2g.EPS
FRAME = v2g.FRAME


# ---- OLD voice2gender features (the adapter's code before the speed-up) -------------------
def old_frames(x: np.ndarray, step: int) -> np.ndarray:
    n = (x.shape[1] - FRAME) // step + 1
    return x[:, np.arange(n)[:, None] * step + np.arange(FRAME)]


def old_features_batch(pcm: np.ndarray, sr: int = v2g.PCM_RATE) -> list[np.ndarray | None]:
    b, n = pcm.shape
    if n < FRAME:
        return [None] * b
    peaks = np.max(np.abs(pcm), axis=1)
    freq = np.arange(n // 2, dtype=np.float64) * (sr / n)
    keep = freq <= 280.0
    amp = np.abs(np.fft.rfft(pcm * np.hanning(n), axis=1))[:, : n // 2][:, keep]
    gated = np.where(np.abs(pcm) <= peaks[:, None] * 0.05, 0.0, pcm)
    frames = old_frames(gated, FRAME // 2)
    nf = frames.shape[1]
    frames = np.where(frames == 0.0, 1e-6, frames).reshape(-1, FRAME)
    spectrum = np.maximum(np.abs(np.fft.fft(frames, axis=1)), EPS)
    ceps = np.real(np.fft.ifft(np.log(spectrum), axis=1))
    ceps = np.where(np.isfinite(ceps), ceps, 0.0)
    lo = sr // 280
    k = np.argmax(ceps[:, lo : FRAME // 2], axis=1).reshape(b, nf)
    f0 = sr / (lo + k)
    voiced = (k > 0) & (f0 >= 50.0) & (f0 <= 280.0)
    dfreq = np.fft.rfftfreq(FRAME, d=1.0 / sr)[:-1]
    band = dfreq <= 7000.0
    frames = (old_frames(gated, FRAME) * np.hanning(FRAME)).reshape(-1, FRAME)
    spec = np.abs(np.fft.rfft(frames, axis=1))[:, :-1][:, band]
    nd = spec.shape[0] // b
    has_peak = (np.max(spec, axis=1) > EPS).reshape(b, nd)
    dom = dfreq[band][np.argmax(spec, axis=1)].reshape(b, nd)
    out: list[np.ndarray | None] = []
    for i in range(b):
        if float(peaks[i]) <= EPS:
            out.append(None)
            continue
        spectral = v2g._spectral(amp[i], freq[keep])
        tracks = v2g._tracks(f0[i][voiced[i]], dom[i][has_peak[i]])
        row = None if spectral is None or tracks is None else np.asarray(spectral + tracks)
        out.append(row if row is not None and np.isfinite(row).all() else None)
    return out


def old_v2g_call(model: v2g.Voice2Gender, waves: np.ndarray) -> np.ndarray:
    """The adapter's __call__ with the OLD features."""
    waves = np.asarray(waves, dtype=np.float32)
    feats = []
    for i in range(0, len(waves), v2g.CHUNK):
        feats += old_features_batch(v2g.to_pcm(waves[i : i + v2g.CHUNK]))
    out = np.full((len(waves), 2), 0.5)
    known = [i for i, f in enumerate(feats) if f is not None]
    if known:
        p = model.female(np.stack([feats[i] for i in known]))
        out[known, 0], out[known, 1] = p, 1.0 - p
    return out.astype(np.float32)


# ---- OLD ina network (the adapter's before BatchNormalization was folded) ---------------
class OldNetwork:
    def __init__(self, layers: list[ina.Layer]):
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a))

        self.steps: list[tuple[str, tuple]] = []
        for layer in layers:
            cfg, arr = layer.config, layer.arrays
            if layer.kind == "Conv2D":
                kernel = tensor(arr["kernel"].transpose(3, 2, 0, 1))
                self.steps.append(("conv", (kernel, tensor(arr["bias"]))))
            elif layer.kind == "Dense":
                self.steps.append(("dense", (tensor(arr["kernel"]), tensor(arr["bias"]))))
            elif layer.kind == "BatchNormalization":
                scale = arr["gamma"] / np.sqrt(arr["moving_variance"] + cfg["epsilon"])
                shift = arr["beta"] - arr["moving_mean"] * scale
                self.steps.append(("affine", (tensor(scale), tensor(shift))))
            elif layer.kind == "MaxPooling2D":
                pool = (tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"])
                self.steps.append(("pool", pool))
            elif layer.kind == "Flatten":
                self.steps.append(("flatten", ()))
            activation = cfg.get("activation", "linear")
            if activation != "linear":
                self.steps.append((activation, ()))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = x[:, None]
        for op, args in self.steps:
            if op == "conv":
                h = F.conv2d(h, args[0], args[1])
            elif op == "dense":
                h = h @ args[0] + args[1]
            elif op == "affine":
                shape = (1, -1, 1, 1) if h.ndim == 4 else (1, -1)
                h = h * args[0].view(shape) + args[1].view(shape)
            elif op == "pool":
                pool, stride, padding = args
                if padding == "same":
                    top, bottom = ina._same_pads(h.shape[2], pool[0], stride[0])
                    left, right = ina._same_pads(h.shape[3], pool[1], stride[1])
                    h = F.pad(h, (left, right, top, bottom), value=-math.inf)
                h = F.max_pool2d(h, pool, stride)
            elif op == "flatten":
                h = h.permute(0, 2, 3, 1).flatten(1)
            elif op == "relu":
                h = h.relu()
            elif op == "softmax":
                h = torch.softmax(h, dim=-1)
        return h


def _clips(root: Path) -> list[np.ndarray]:
    rows = read_manifest(root / "manifest.csv")
    return [sf.read(root / r["path"], dtype="float32")[0] for r in rows]


def _sparse(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip's 1, 4, 16, 64 strongest rfft bins alone, and two random masks."""
    spectrum = np.fft.rfft(wave.astype(np.float64))
    order = np.argsort(-np.abs(spectrum))
    masks = []
    for k in (1, 4, 16, 64):
        m = np.zeros(len(spectrum))
        m[order[:k]] = 1.0
        masks.append(m)
    masks += [(rng.random(len(spectrum)) < share).astype(float) for share in (0.125, 0.5)]
    return np.stack([np.fft.irfft(spectrum * m, n=len(wave)) for m in masks]).astype(np.float32)


def _masked_batch(wave: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(wave.astype(np.float64))
    masks = rng.random((n, len(spectrum))) < rng.uniform(0.05, 0.95, (n, 1))
    return np.fft.irfft(spectrum * masks, n=len(wave), axis=1).astype(np.float32)


def bench_voice2gender(args: argparse.Namespace) -> None:
    model = v2g.voice2gender()
    clips = _clips(REPO / "data" / "gender")
    rng = np.random.default_rng(0)
    rel = 0.0
    refusals_differ = top1_changes = n = 0
    prob = 0.0
    for wave in clips:
        signals = np.concatenate([wave[None], _sparse(wave, rng)])
        pcm = v2g.to_pcm(signals)
        for new, old in zip(v2g.features_batch(pcm), old_features_batch(pcm), strict=True):
            n += 1
            if (new is None) != (old is None):
                refusals_differ += 1
            elif new is not None:
                scale = np.maximum(np.abs(old), 1e-300)
                rel = max(rel, float(np.max(np.abs(new - old) / scale)))
        p_new, p_old = model(signals), old_v2g_call(model, signals)
        prob = max(prob, float(np.max(np.abs(p_new - p_old))))
        top1_changes += int(np.sum(p_new.argmax(1) != p_old.argmax(1)))
    print(f"voice2gender ({len(clips)} clips of data/gender/eval and {n - len(clips)} sparse)")
    print(f"  features new vs OLD: max relative |diff| = {rel:.1e}; refusals differ: "
          f"{refusals_differ}/{n}")  # fmt: skip
    print(f"  probabilities new vs OLD: max |diff| = {prob:.1e}; top-1 changes: {top1_changes}")
    times = {"OLD": 0.0, "new": 0.0}
    paths = {"OLD": lambda x: old_v2g_call(model, x), "new": model}
    chosen = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    model(_masked_batch(chosen[0], 4, rng))  # warm-up
    old_v2g_call(model, _masked_batch(chosen[0], 4, rng))
    queries = 0
    for _ in range(args.rounds):
        for wave in chosen:
            batch = _masked_batch(wave, args.queries, rng)
            for name in ("OLD", "new") if queries % 2 == 0 else ("new", "OLD"):
                start = time.perf_counter()
                paths[name](batch)
                times[name] += time.perf_counter() - start
            queries += len(batch)
    old_ms, new_ms = (times[k] / queries * 1000 for k in ("OLD", "new"))
    mean_s = np.mean([len(w) for w in chosen]) / 16000
    print(f"  ms per clip-query ({queries} queries in batches of {args.queries}, "
          f"{len(chosen)} clips of {mean_s:.2f} s mean): OLD {old_ms:.1f}, new {new_ms:.1f} "
          f"({old_ms / new_ms:.2f}x)")  # fmt: skip


INA = {  # factory -> data set
    "gender": "data/gender",
    "speech_music": "data/speech-music",
    "speech_music_noise": "data/speech-music",
}


def bench_ina(args: argparse.Namespace) -> None:
    for factory, data in INA.items():
        model = getattr(ina, factory)()
        new = model.network()
        old = OldNetwork(ina.read_network(ina.weights_path(model.weights)))
        forward = ref.np_network(model.path)
        clips = _clips(REPO / data)
        clip_diff = new_np = old_np = 0.0
        for wave in clips:
            p = ina.patches(ina.log_mel(ina.pcm16(torch.from_numpy(wave)[None])), model.n_mels)
            p = p[0][torch.isfinite(p[0]).all(dim=2).all(dim=1)].float()
            with torch.inference_mode():
                a, b = new(p).double(), old(p).double()
            clip_diff = max(clip_diff, float((a.mean(0) - b.mean(0)).abs().max()))
            expected = forward(p[::4].numpy())
            new_np = max(new_np, float(np.abs(a[::4].numpy() - expected).max()))
            old_np = max(old_np, float(np.abs(b[::4].numpy() - expected).max()))
        print(f"ina {factory} ({len(clips)} clips of {data}/eval)")
        print(f"  clip probabilities new vs OLD: max |diff| = {clip_diff:.1e}; per-patch "
              f"softmax vs the NumPy forward pass (every 4th patch): new {new_np:.1e}, "
              f"OLD {old_np:.1e}")  # fmt: skip
        chosen = clips[:: max(1, len(clips) // args.clips)][: args.clips]
        nets = {"OLD": old, "new": new}
        times = {"OLD": 0.0, "new": 0.0}
        model(chosen[0][None])  # warm-up
        calls = 0
        for _ in range(args.rounds):
            for wave in chosen:
                for name in ("OLD", "new") if calls % 2 == 0 else ("new", "OLD"):
                    model._net = nets[name]  # the adapter's whole path, with either network
                    start = time.perf_counter()
                    model(wave[None])
                    times[name] += time.perf_counter() - start
                calls += 1
        model._net = new
        old_ms, new_ms = (times[k] / calls * 1000 for k in ("OLD", "new"))
        mean_s = np.mean([len(w) for w in chosen]) / 16000
        print(f"  ms per clip-query (one clip per call, {calls} calls, {len(chosen)} clips of "
              f"{mean_s:.2f} s mean): OLD {old_ms:.0f}, new {new_ms:.0f} "
              f"({old_ms / new_ms:.2f}x)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=64, help="masked signals per call")
    ap.add_argument("--clips", type=int, default=10, help="clips timed per model")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["voice2gender", "ina"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.only != "ina":
        bench_voice2gender(args)
    if args.only != "voice2gender":
        bench_ina(args)


if __name__ == "__main__":
    main()
