"""Ingestion against the hardware: end-to-end queries/s of `ingest` vs the bare model.

    python bench/bench_ingest.py --device cuda --model hf-random-wav2vec2-base --clips 32
    python bench/bench_ingest.py --device cpu --model zoo:data/zoo/spoof/sp1.safetensors --clips 4

Builds a fresh warehouse in --work with synthetic 3 s clips (tones, chirps and noise,
seeded) and one model, then runs the real ingest job (`sigwarehouse.jobs.ingest`) and
prints:
  - bare forward throughput of the model at the batch size (queries/s),
  - ingest throughput (all model queries the job made / its wall time, which includes
    loading clips, the freqrex search, FFTs, evaluating the signals and the DuckDB writes),
  - their ratio, the share of job time inside model forward passes,
  - warehouse bytes per explained clip.
Target on an H100/H200 with a wav2vec2-base-sized model: ratio >= 0.85.

The catalog rows are inserted with SQL rather than `sigwh catalog sync` so the script
runs where only torch, transformers, duckdb and soundfile are installed (the GPU image).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sigwarehouse import clips, store
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.jobs import ingest
from sigwarehouse.models.loader import load_classifier

SR = 16000


def synthetic_clips(n: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Deterministic clips: a few tones, a chirp and some noise at random levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for _ in range(n):
        x = sum(
            rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(80, 4000) * t) for _ in range(3)
        )
        f0, f1 = rng.uniform(100, 3000, size=2)
        x = x + 0.2 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / seconds / 2) * t)
        x = x + rng.uniform(0.01, 0.1) * rng.standard_normal(t.size)
        out.append((0.8 * x / np.abs(x).max()).astype(np.float32))
    return out


def build_random_wav2vec2(out: Path, n_labels: int, calibration: list[np.ndarray]) -> Path:
    """A wav2vec2-base-sized classifier with random weights, saved like a hub checkpoint.

    The random head is re-centred on the calibration clips so that the predicted class
    varies with the input (otherwise every clip gets one class and the search is trivial).
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    labels = {i: f"class{i}" for i in range(n_labels)}
    cfg = Wav2Vec2Config(
        num_labels=n_labels, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model = Wav2Vec2ForSequenceClassification(cfg).eval()
    with torch.no_grad():
        pooled = []
        hook = model.classifier.register_forward_hook(lambda m, i, o: pooled.append(i[0]))
        x = torch.from_numpy(np.stack(calibration[:16]))
        model((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True) + 1e-7))
        hook.remove()
        # Random wav2vec2 maps most inputs close to one pooled vector: standardise each
        # pooled feature over the calibration clips (folded into the head), then give
        # every class logit mean 0 and std 3 over them.
        h = pooled[0]
        weight = model.classifier.weight / h.std(dim=0).clamp_min(1e-6)
        logits = (h - h.mean(dim=0)) @ weight.T
        scale = 3.0 / logits.std(dim=0).clamp_min(1e-12)
        model.classifier.weight.copy_(weight * scale[:, None])
        model.classifier.bias.copy_(-(h.mean(dim=0) @ weight.T) * scale)
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(out)
    return out


def make_warehouse(work: Path, spec: str, n_clips: int, seconds: float) -> tuple[Path, str]:
    waves = synthetic_clips(n_clips, seconds)
    if spec.startswith("zoo:"):
        ref = str(Path(spec[4:]).resolve())
        labels = json.loads(Path(ref).with_suffix(".json").read_text())["labels"]
        kind = "zoo"
    else:
        labels = [f"class{i}" for i in range(4)]
        ref = str(build_random_wav2vec2(work / "hf-model", len(labels), waves))
        kind = "hf"
    root = work / "clips"
    for i, w in enumerate(waves):
        folder = root / labels[i % len(labels)]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"clip{i:04d}.wav", w, SR, subtype="FLOAT")
    path, _ = store.init(work / "bench.duckdb")
    with store.opened(path) as con:
        con.execute("INSERT INTO tasks VALUES ('bench', ?, ?, 0.5, NULL)", [labels, SR])
        con.execute(
            "INSERT INTO datasets VALUES ('bench', 'bench', ?, 'folder', NULL, NULL)", [str(root)]
        )
        con.execute(
            "INSERT INTO models (model, task, kind, ref, labels) VALUES ('m', 'bench', ?, ?, ?)",
            [kind, ref, labels],
        )
        clips.add_dataset(con, "bench", progress=False)
    return path, ref


def bare_rate(clf, waves: torch.Tensor, batch: int, seconds: float = 5.0) -> float:
    """Queries/s of the bare model at this batch size (inputs already on the device)."""
    x = waves[:batch].repeat((batch + len(waves) - 1) // len(waves), 1)[:batch]
    for _ in range(2):
        clf(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        clf(x)
        n += batch
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--model", default="hf-random-wav2vec2-base")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--clips-per-batch", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)

    path, ref = make_warehouse(work, args.model, args.clips, args.seconds)
    params = FreqrexParams(iterations=args.iterations, batch_size=args.batch_size)
    with store.opened(path, read_only=True) as con:
        plan = ingest.plan_ingest(con, "m", params)
        labels = con.execute("SELECT labels FROM tasks").fetchone()[0]
    kind = "zoo" if args.model.startswith("zoo:") else "hf"
    clf = load_classifier(kind, ref, labels, device=args.device)
    waves = torch.from_numpy(np.stack(synthetic_clips(min(args.clips, 16), args.seconds))).to(
        args.device
    )
    bare = bare_rate(clf, waves, args.batch_size)
    del clf
    size_before = path.stat().st_size
    summary = ingest.run_ingest(
        path, plan, device=args.device, clips_per_batch=args.clips_per_batch
    )
    c = summary.counters
    rate = c.queries / c.total_seconds
    with store.opened(path, read_only=True) as con:
        n_expl = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
        blob_bytes = con.execute(
            "SELECT sum(octet_length(responsibility) + coalesce(octet_length(sufficient_mask), 0)"
            " + coalesce(octet_length(complete_mask), 0)) FROM explanations"
        ).fetchone()[0]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device: {device_name}; model {args.model}; {args.clips} clips of {args.seconds} s")
    print(f"bare forward: {bare:,.0f} queries/s at batch {args.batch_size}")
    print(
        f"ingest: {c.queries:,} queries in {c.total_seconds:.1f} s = {rate:,.0f} queries/s; "
        f"{c.model_seconds / c.total_seconds:.0%} of job time in model forward passes"
    )
    print(f"ratio ingest / bare forward: {rate / bare:.3f}")
    per_blob = blob_bytes / max(n_expl, 1)
    per_file = (path.stat().st_size - size_before) / max(n_expl, 1)
    print(
        f"storage: {n_expl} explanations; responsibility + masks {per_blob:,.0f} bytes "
        f"per clip-model; file grew {per_file:,.0f} bytes per clip-model"
    )


if __name__ == "__main__":
    main()
