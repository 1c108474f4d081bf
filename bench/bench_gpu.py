"""Ingest at the GPU's pace: the ingest job's queries/s against the model's bare forward.

    python bench/bench_gpu.py [--budget-s 300] [--batch-sizes 64,128,256,512]
    python bench/bench_gpu.py --smoke        # tiny sizes, runs on a CPU in seconds

One run, one device, one model: a wav2vec2-base-sized Wav2Vec2ForSequenceClassification
built from `Wav2Vec2Config()` (its defaults are base-sized: 12 layers, 768 wide, about
95 M parameters) with random weights, so nothing is downloaded; 3 s clips at 16 kHz.

(a) Bare forward: the stock model alone, `model(input_values=x).logits` under bf16
    autocast with SDPA attention, in inference mode, on random input of each batch
    size; the best clips/s over the batch sizes is the ceiling.
(b) End to end: the same model saved with save_pretrained into a temporary folder,
    registered as kind "hf" in a temporary catalog and warehouse with synthetic 3 s
    clips (tones and noise, FLAC), and explained by the ingest job (`run_ingest`:
    default freqrex parameters, --dtype as given, --batch-size auto by default), with
    everything it does: features, FFT masking, the float32 verification, the signals'
    evaluation, the DuckDB writes. A first small run warms up and measures the queries
    one clip takes; the timed run then takes as many clips as fit the budget left.
    queries/s = the model queries of the timed run / the run's seconds (from its start
    to its last write, as `sigwh ingest` reports them; loading the model before the run
    is shown apart).

Prints both figures, their ratio and whether the targets are met: ingest >= 0.85x the
bare forward, and >= 3,000 queries/s. `--budget-s` bounds the whole run (model
building and warm-ups included; about 25% for (a)); `--json PATH` also writes the
figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
LABELS = ["tone", "noise"]
TARGET_RATIO = 0.85
TARGET_QPS = 3000.0


@dataclass
class Setup:
    """What one run measures: the model config, the clip length, the batch sizes."""

    config: dict
    seconds: float
    batch_sizes: list[int]
    freqrex: dict = field(default_factory=dict)  # FreqrexParams overrides for (b)
    pool_clips: int = 256  # synthetic clips written for (b)


def full_setup(batch_sizes: list[int]) -> Setup:
    return Setup(config={}, seconds=3.0, batch_sizes=batch_sizes)


def smoke_setup() -> Setup:
    tiny = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
    )  # fmt: skip
    light = dict(iterations=1, max_depth=3, grid_size=6, grid_rounds=1, certify_rounds=2,
                 per_bin_limit=64, min_band_bins=64)  # fmt: skip
    return Setup(config=tiny, seconds=0.5, batch_sizes=[4, 8], freqrex=light, pool_clips=8)


def say(text: str) -> None:
    print(text, flush=True)  # flushed: a run cut short still shows what it measured


def build_model(setup: Setup, device: torch.device):
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        attn_implementation="sdpa",
        **setup.config,
    )
    torch.manual_seed(0)
    return Wav2Vec2ForSequenceClassification(config).to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(
    model, setup: Setup, device: torch.device, dtype: torch.dtype, budget_s: float
) -> dict[int, float]:
    """clips/s of the stock forward pass at each batch size (0.0: out of memory)."""
    n = int(setup.seconds * SAMPLE_RATE)
    rates: dict[int, float] = {}
    per_size = budget_s / max(len(setup.batch_sizes), 1)
    for batch in setup.batch_sizes:
        x = torch.randn(batch, n, device=device)
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
                for _ in range(2):  # warm-up: kernels chosen, memory pooled
                    model(input_values=x).logits.float()
                sync(device)
                start, runs = time.perf_counter(), 0
                while True:
                    model(input_values=x).logits.float()
                    runs += 1
                    if runs % 2 == 0:
                        sync(device)
                        if time.perf_counter() - start > per_size * 0.6 or runs >= 50:
                            break
                sync(device)
                rates[batch] = batch * runs / (time.perf_counter() - start)
        except torch.OutOfMemoryError:
            rates[batch] = 0.0
        del x
        if device.type == "cuda":
            torch.cuda.empty_cache()
        shown = f"{rates[batch]:10.1f} clips/s" if rates[batch] else "  out of memory"
        say(f"  bare forward, batch {batch:5d}: {shown}")
    return rates


def write_clips(root: Path, setup: Setup) -> None:
    """Synthetic clips: a few tones over noise ("tone") or noise alone ("noise")."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    n = int(setup.seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    for k in range(setup.pool_clips):
        label = LABELS[k % 2]
        wave = 0.05 * rng.standard_normal(n)
        if label == "tone":
            for f in rng.uniform(100, 4000, 3):
                wave += 0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"clip{k:04d}.flac", np.clip(wave, -1, 1).astype(np.float32), SAMPLE_RATE)


def make_warehouse(work: Path, model, setup: Setup) -> Path:
    """A catalog (task, dataset, the model as kind "hf") and a warehouse with the clips."""
    from transformers import Wav2Vec2FeatureExtractor

    from sigwarehouse import catalog, clips, store
    from sigwarehouse.models import trust

    model_dir, data, cat = work / "model", work / "clips", work / "catalog"
    model.save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE).save_pretrained(model_dir)
    write_clips(data, setup)
    (cat / "models").mkdir(parents=True)
    (cat / "datasets").mkdir()
    (cat / "tasks.toml").write_text(
        f"[bench]\nlabels = {json.dumps(LABELS)}\nsample_rate = {SAMPLE_RATE}\n"
    )
    (cat / "models" / "bench.toml").write_text(
        f'[[model]]\nid = "w2v2"\ntask = "bench"\nkind = "hf"\nref = "{model_dir}"\n'
    )
    (cat / "datasets" / "bench.toml").write_text(
        f'name = "bench-clips"\ntask = "bench"\nroot = "{data}"\nlabels_from = "folder"\n'
    )
    trust.set_source(trust.ModelSource(catalog_dir=cat))  # the hf model loads from here
    path, _ = store.init(work / "warehouse.duckdb")
    with store.opened(path) as con:
        catalog.sync(con, cat)
        clips.add_dataset(con, "bench-clips", progress=False)
    return path


def ingest_run(path: Path, params, device: str, limit: int, auto_batch: bool):
    """One ingest run of `limit` clips not yet explained; (summary, wall seconds)."""
    from sigwarehouse import store
    from sigwarehouse.jobs import ingest

    with store.opened(path, read_only=True) as con:
        plan = ingest.plan_ingest(con, "w2v2", params, limit=limit)
    start = time.perf_counter()
    summary = ingest.run_ingest(path, plan, device=device, auto_batch=auto_batch)
    return summary, time.perf_counter() - start, len(plan.clip_ids)


def end_to_end(
    model, setup: Setup, device: str, dtype: str, batch: str, budget_s: float, work: Path
) -> dict:
    from sigwarehouse import store
    from sigwarehouse.devices import clips_per_batch
    from sigwarehouse.freqrex.params import FreqrexParams

    deadline = time.perf_counter() + budget_s
    path = make_warehouse(work, model, setup)
    auto = batch == "auto"
    params = FreqrexParams(dtype=dtype, batch_size=64 if auto else int(batch), **setup.freqrex)
    per_batch = clips_per_batch(device)
    warm_clips = min(max(2, per_batch // 4), setup.pool_clips // 2)
    summary, wall, n = ingest_run(path, params, device, warm_clips, auto)
    per_clip = summary.counters.queries / max(n, 1)
    warm_qps = summary.counters.queries / wall
    say(
        f"  warm-up run: {n} clips, {summary.counters.queries:,} queries ({per_clip:.0f} per "
        f"clip) in {wall:.1f} s = {warm_qps:.0f} queries/s; {summary.describe()}"
    )
    left = deadline - time.perf_counter()
    fit = int(left * 0.8 * warm_qps / max(per_clip, 1))  # the warm-up rate underestimates
    n_clips = max(1, min(setup.pool_clips - n, fit))
    if n_clips >= per_batch:
        n_clips -= n_clips % per_batch  # whole batches: the last one is not half empty
    say(f"  timed run: {n_clips} clips ({left:.0f} s of budget left)")
    summary, wall, n = ingest_run(path, params, device, n_clips, auto)
    c = summary.counters
    say(f"  {summary.describe()}")
    with store.opened(path, read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
    return {
        "clips": n,
        "explanations_stored": stored,
        "queries": c.queries,
        "run_s": c.total_seconds,
        "wall_s": wall,
        "queries_per_s": c.queries / c.total_seconds,
        "queries_per_s_with_loading": c.queries / wall,
        "model_share": c.model_seconds / c.total_seconds,
        "batch_size": summary.plan.params.batch_size,
        "dtype": summary.plan.params.dtype,
        "float32_retries": c.extra.get("float32_retries", 0),
        "queries_per_clip": c.queries / max(n, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny model and clips (CPU-friendly)")
    ap.add_argument("--budget-s", type=float, default=300.0, help="the whole run's seconds")
    ap.add_argument("--batch-sizes", default="64,128,256,512", help="bare forward batch sizes")
    ap.add_argument("--batch-size", default="auto", help="ingest's --batch-size (N or auto)")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the temporary files")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    setup = smoke_setup() if args.smoke else full_setup(sizes)
    dtype = getattr(torch, args.dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model = build_model(setup, device)
    n_params = sum(p.numel() for p in model.parameters())
    say(
        f"device {name}; Wav2Vec2ForSequenceClassification, {n_params / 1e6:.1f} M parameters "
        f"(random weights), attention {model.config._attn_implementation}, {args.dtype} "
        f"autocast; clips of {setup.seconds:g} s at {SAMPLE_RATE} Hz"
    )
    say("(a) bare forward:")
    rates = bare_forward(model, setup, device, dtype, args.budget_s * 0.25)
    best_batch = max(rates, key=rates.get)
    bare = rates[best_batch]
    say(f"  best: {bare:.1f} clips/s at batch {best_batch}")
    say("(b) end-to-end ingest:")
    left = args.budget_s - (time.perf_counter() - started)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    e2e = end_to_end(model, setup, str(device), args.dtype, args.batch_size, left, work)
    qps = e2e["queries_per_s"]
    ratio = qps / bare if bare else math.nan
    say("results:")
    say(f"  bare forward (best)  : {bare:10.1f} clips/s (batch {best_batch})")
    say(
        f"  ingest end to end    : {qps:10.1f} queries/s ({e2e['clips']} clips, "
        f"{e2e['queries']:,} queries in {e2e['run_s']:.1f} s, {e2e['wall_s']:.1f} s with "
        f"loading the model = {e2e['queries_per_s_with_loading']:.1f} queries/s; "
        f"{e2e['queries_per_clip']:.0f} queries per clip; batch {e2e['batch_size']}, "
        f"{e2e['dtype']}, {e2e['model_share']:.0%} of the time in model forward passes, "
        f"{e2e['float32_retries']} clip(s) searched again in float32)"
    )
    ok_ratio, ok_qps = ratio >= TARGET_RATIO, qps >= TARGET_QPS
    say(f"  ratio ingest / bare  : {ratio:10.3f} (target >= {TARGET_RATIO}: "
        f"{'met' if ok_ratio else 'NOT met'})")  # fmt: skip
    say(f"  queries/s target     : >= {TARGET_QPS:,.0f}: {'met' if ok_qps else 'NOT met'}")
    total = time.perf_counter() - started
    say(f"whole run: {total:.0f} s (budget {args.budget_s:.0f} s)")
    if args.json:
        out = {"device": name, "bare_clips_per_s": rates, "best_batch": best_batch,
               "bare_best": bare, "ingest": e2e, "ratio": ratio, "targets_met":
               {"ratio": ok_ratio, "queries_per_s": ok_qps}, "seconds": total,
               "smoke": args.smoke}  # fmt: skip
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
