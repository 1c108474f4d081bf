"""voice2gender and the ina CNNs: ms per clip-query of the adapters against their previous
code (the modules at commit c438d26, read from this checkout's git history, labelled OLD),
and how far the two paths' answers are.

    python bench/bench_pretrained_speed.py              # needs the `pretrained` and `ina` extras
    python bench/bench_pretrained_speed.py --queries 64 --clips 10 --rounds 2

voice2gender: the OLD adapter computes the cepstrum with a numpy complex FFT then inverse
FFT, copies frames by fancy indexing, and builds its Hann windows and resampling filter on
every call. Equivalence on every clip of data/gender/eval and on sparse masked versions of each
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
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ina_reference as ref  # noqa: E402

from sigwarehouse.corpus.build import read_manifest  # noqa: E402
from sigwarehouse.models import ina  # noqa: E402
from sigwarehouse.models import voice2gender as v2g  # noqa: E402

# The commit before the speed-up: the OLD adapters are read from the repository's history
# (this bench runs in a git checkout), not copied here.
BEFORE = "c438d261064fddcb94b9454b9bd3cbbb32779179"


def previous(module: ModuleType) -> ModuleType:
    """`module` as it was at BEFORE, from `git show`, as a module of its own (`<name>_old`)
    that reads the same weight files beside the current one."""
    rel = Path(module.__file__).resolve().relative_to(REPO).as_posix()
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{BEFORE}:{rel}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        why = f"cannot read {rel} at {BEFORE[:7]} ({exc}): run in a git checkout"
        raise SystemExit(why) from exc
    old = ModuleType(f"{module.__name__}_old")
    old.__file__ = module.__file__  # weights/ beside it: the same, hash-checked files
    sys.modules[old.__name__] = old  # dataclasses look their module up
    exec(compile(source, f"{BEFORE[:7]}:{rel}", "exec"), old.__dict__)
    return old


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
    model, old_v2g = v2g.voice2gender(), previous(v2g)
    old_model = old_v2g.voice2gender()
    clips = _clips(REPO / "data" / "gender")
    rng = np.random.default_rng(0)
    rel = 0.0
    refusals_differ = top1_changes = n = 0
    prob = 0.0
    for wave in clips:
        signals = np.concatenate([wave[None], _sparse(wave, rng)])
        pcm = v2g.to_pcm(signals)
        old_features = old_v2g.features_batch(pcm)
        for new, old in zip(v2g.features_batch(pcm), old_features, strict=True):
            n += 1
            if (new is None) != (old is None):
                refusals_differ += 1
            elif new is not None:
                scale = np.maximum(np.abs(old), 1e-300)
                rel = max(rel, float(np.max(np.abs(new - old) / scale)))
        p_new, p_old = model(signals), old_model(signals)
        prob = max(prob, float(np.max(np.abs(p_new - p_old))))
        top1_changes += int(np.sum(p_new.argmax(1) != p_old.argmax(1)))
    print(f"voice2gender ({len(clips)} clips of data/gender/eval and {n - len(clips)} sparse)")
    print(f"  features new vs OLD: max relative |diff| = {rel:.1e}; refusals differ: "
          f"{refusals_differ}/{n}")  # fmt: skip
    print(f"  probabilities new vs OLD: max |diff| = {prob:.1e}; top-1 changes: {top1_changes}")
    times = {"OLD": 0.0, "new": 0.0}
    paths = {"OLD": old_model, "new": model}
    chosen = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    model(_masked_batch(chosen[0], 4, rng))  # warm-up
    old_model(_masked_batch(chosen[0], 4, rng))
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
    old_ina = previous(ina)
    for factory, data in INA.items():
        model = getattr(ina, factory)()
        new = model.network()
        old = old_ina.Network(old_ina.read_network(ina.weights_path(model.weights)))
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
