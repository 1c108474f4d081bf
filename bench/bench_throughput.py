"""Explanation throughput against the hardware: how close freqrex keeps the model busy.

    python bench/bench_throughput.py --device cuda --model hf-random-wav2vec2-base
    python bench/bench_throughput.py --device cpu --model zoo:data/zoo/spoof/sp2

Prints the end-to-end explanation throughput (model queries per second, including mask
building, FFTs, inverse FFTs and all search logic) divided by the bare forward
throughput of the same model at the same batch size on the same clips. 1.0 would mean
the search costs nothing beyond the forward passes. Target: >= 0.85 on an H100.

Models:
  hf-random-wav2vec2-base  Wav2Vec2ForSequenceClassification with wav2vec2-base sizes
                           (transformers' default Wav2Vec2Config), random weights, built
                           from the config (no download). Its random classifier head is
                           re-centred and scaled on the benchmark clips, so predictions
                           vary with the input and the search runs its full course.
  hf-random-wav2vec2-tiny  the same, 2 small layers: a quick check of this script on CPU.
  zoo:<path>               a zoo model (data/zoo/<task>/<id>/ or <id>.safetensors), its own labels.
  toy                      the tiny tone model of sigwarehouse.freqrex.toy.
Clips: deterministic synthetic 3 s clips (tones, chirps, noise) at 16 kHz.
Only torch, transformers, numpy and this package's freqrex and models modules are used.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sigwarehouse.freqrex import FreqrexParams, explain
from sigwarehouse.models.base import AudioClassifier

SR = 16000


class RandomWav2Vec2(AudioClassifier):
    """A random-weight Wav2Vec2ForSequenceClassification; normalisation done in torch."""

    def __init__(self, size: str, n_labels: int, device: str, dtype: torch.dtype):
        from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

        super().__init__([f"class{k}" for k in range(n_labels)], SR, device)
        cfg = Wav2Vec2Config(num_labels=n_labels)  # defaults are the wav2vec2-base sizes
        if size == "tiny":
            cfg = Wav2Vec2Config(
                num_labels=n_labels,
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=128,
                conv_dim=(32,) * 7,
                classifier_proj_size=32,
            )
        torch.manual_seed(0)
        self.model = Wav2Vec2ForSequenceClassification(cfg).to(self.device, dtype).eval()
        self.dtype = dtype

    @torch.no_grad()
    def calibrate(self, clips: torch.Tensor, spread: float = 3.0) -> None:
        """Re-centre and scale the random head on `clips` so that predictions vary with
        the input (a raw random head gives every input, silence included, one class)."""
        pooled = []
        hook = self.model.classifier.register_forward_hook(
            lambda mod, inp, out: pooled.append(inp[0].float())
        )
        for i in range(0, len(clips), 8):
            self(clips[i : i + 8].to(self.device))
        hook.remove()
        h = torch.cat(pooled)
        w = self.model.classifier.weight.float()
        logits = h @ w.T
        scale = spread / logits.std(dim=0).clamp_min(1e-12)
        self.model.classifier.weight.copy_((w * scale[:, None]).to(self.dtype))
        self.model.classifier.bias.copy_((-logits.mean(dim=0) * scale).to(self.dtype))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = waves.float()
        # what Wav2Vec2FeatureExtractor(do_normalize=True) does, per clip, on the device
        x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True) + 1e-7)
        logits = self.model(input_values=x.to(self.dtype)).logits
        return torch.softmax(logits.float(), dim=-1)


def load_model(spec: str, device: str, dtype: torch.dtype) -> AudioClassifier:
    if spec == "hf-random-wav2vec2-base":
        return RandomWav2Vec2("base", 4, device, dtype)
    if spec == "hf-random-wav2vec2-tiny":
        return RandomWav2Vec2("tiny", 4, device, dtype)
    if spec == "toy":
        from sigwarehouse.freqrex.toy import train_tone_classifier

        return train_tone_classifier(n_samples=3 * SR, device=device)
    if spec.startswith("zoo:"):
        from sigwarehouse.models.labels import model_labels
        from sigwarehouse.models.loader import load_classifier

        path = spec[4:]
        return load_classifier(_kind(path), path, model_labels(_kind(path), path), device=device)
    raise SystemExit(f"unknown --model {spec!r}")


def synthetic_clips(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """n deterministic clips: a few tones, a chirp and noise each, at random levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clips = []
    for _ in range(n):
        x = rng.normal(0, rng.uniform(0.005, 0.05), t.size)
        for _ in range(rng.integers(1, 4)):
            x += rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * rng.uniform(80, 6000) * t)
        f0, f1 = rng.uniform(100, 4000, 2)
        x += rng.uniform(0.0, 0.3) * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / t[-1] / 2) * t)
        clips.append(x.astype(np.float32))
    return torch.from_numpy(np.stack(clips))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_forward_rate(clf: AudioClassifier, clips: torch.Tensor, batch: int, reps: int) -> float:
    """Model queries per second of plain forward passes on full batches of real clips."""
    device = str(clf.device)
    idx = torch.arange(batch) % len(clips)
    x = clips[idx].to(clf.device)
    clf(x)  # warm-up (kernel selection, allocator)
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        clf(x)
    _sync(device)
    return reps * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--model", default="hf-random-wav2vec2-base")
    ap.add_argument("--clips", type=int, default=None, help="clips (default 96 cuda, 8 cpu)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=None, help="freqrex iterations")
    ap.add_argument("--reps", type=int, default=None, help="bare forward repetitions")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    n_clips = args.clips or (96 if args.device == "cuda" else 8)
    reps = args.reps or (30 if args.device == "cuda" else 5)
    dtype = getattr(torch, args.dtype)

    clf = load_model(args.model, args.device, dtype)
    clips = synthetic_clips(n_clips, args.seconds)
    if isinstance(clf, RandomWav2Vec2):
        clf.calibrate(synthetic_clips(32, args.seconds, seed=1))
    with torch.inference_mode():
        top = clf(clips[: args.batch_size].to(clf.device)).argmax(dim=1).cpu()
        silent = int(clf(torch.zeros(1, clips.shape[1], device=clf.device)).argmax())
    print(
        f"classes of the clips: {torch.bincount(top, minlength=clf.n_labels).tolist()}; "
        f"silence -> class {silent}"
    )
    params = FreqrexParams(batch_size=args.batch_size)
    if args.iterations:
        params = FreqrexParams(batch_size=args.batch_size, iterations=args.iterations)
    name = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    print(f"device {name}; model {args.model} ({args.dtype}); {n_clips} clips of {args.seconds} s")
    print(f"batch size {args.batch_size}; freqrex params hash {params.hash()}")

    bare = bare_forward_rate(clf, clips, args.batch_size, reps)
    print(f"bare forward: {bare:,.1f} queries/s")

    explain(clf, clips[:1], FreqrexParams(iterations=1, batch_size=args.batch_size))  # warm-up
    _sync(args.device)
    start = time.perf_counter()
    stats: dict = {}
    results = explain(clf, clips, params, stats=stats)
    _sync(args.device)
    seconds = time.perf_counter() - start
    queries = sum(r.queries for r in results)
    rate = queries / seconds
    bare_after = bare_forward_rate(clf, clips, args.batch_size, reps)  # guard against drift
    bare_mean = (bare + bare_after) / 2

    per_clip = np.array([r.queries for r in results])
    shares = [r.sufficient_share for r in results if r.sufficient_share is not None]
    phases: dict[str, int] = {}
    for r in results:
        for k, v in r.queries_by_phase.items():
            phases[k] = phases.get(k, 0) + v
    print(f"explain: {queries} queries in {seconds:.2f} s = {rate:,.1f} queries/s")
    print(f"bare forward (after): {bare_after:,.1f} queries/s")
    print(
        f"median queries per clip: {np.median(per_clip):.0f}"
        f" (min {per_clip.min()}, max {per_clip.max()})"
    )
    if shares:
        bins = [int(r.sufficient_mask.sum()) for r in results if r.sufficient_mask is not None]
        print(
            f"median sufficient set: {np.median(bins):.0f} bins"
            f" ({np.median(shares):.2e} of {results[0].n_vars})"
        )
    print("queries by phase: " + ", ".join(f"{k} {v}" for k, v in phases.items()))
    fill = (queries - n_clips) / max(1, stats["batches"] * args.batch_size)
    print(
        f"mutant batches {stats['batches']} (mean fill {fill:.1%} of {args.batch_size}),"
        f" host round trips {stats['rounds']}"
    )
    print(
        f"THROUGHPUT RATIO (explain / bare forward, batch {args.batch_size}):"
        f" {rate / bare_mean:.3f}"
    )


def _kind(path) -> str:
    """A zoo model is a Hugging Face directory (kind hf) or the CNN's file (kind zoo)."""
    from pathlib import Path as _Path

    return "hf" if _Path(path).is_dir() else "zoo"


if __name__ == "__main__":
    main()
