"""freqrex against ReX's spectral mode: queries per explanation and sufficient-set size.

    python bench/bench_vs_rex.py                         # the tone model, synthetic clips
    python bench/bench_vs_rex.py --model zoo:data/zoo/spoof/sp1.pt \
        --clips-dir data/corpus/spoof/eval --n-clips 6

ReX (`rex-xai` on PyPI) is a peer to compare with, not a dependency: the benchmark
installs it into its own virtual environment under --work-dir (default
/tmp/sigwh-bench-rex), with ReX's pinned numpy, and lets that environment see this
project's torch and source through a .pth file, so both sides run the *same* model
code and weights. ReX's spectral mode treats a 1-D array as contiguous boxes; we give
it each clip's rfft magnitude |S| with mask value 0, and its prediction function turns
ReX's mutant back into a bin mask (zeroed bins removed), builds irfft(mask * S) and
calls the model, counting every mutant it evaluates. ReX runs with its own defaults
(20 iterations, min box 10, chunk 10, batch 1, seed 0); freqrex with its defaults.

Printed per engine: median model queries per explanation, median sufficient-set size
(share of bins) and whether every sufficient mask really keeps the class when re-run
through the model here. freqrex's queries are shown in total (responsibility,
sufficient *and* delta-complete search, minimisation, verification) and for the
sufficient explanation alone. Target: at most half ReX's queries, sets no larger.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from sigwarehouse.freqrex import FreqrexParams, explain, signals_for

ROOT = Path(__file__).resolve().parents[1]
REX_VERSION = "0.4.1"
# rex-xai's requirements (its METADATA) less torch, which comes from this environment
REX_DEPS = [
    "anytree>=2.8.0",
    "fastcache>=1.1.0",
    "imutils>=0.5.4",
    "matplotlib>=3.7.1",
    "numpy==1.26.4",
    "onnxruntime>=1.18.0",
    "pandas>=2.2.0",
    "pillow>=10.3.0",
    "scikit-image>=0.21.0",
    "scipy>=1.10",
    "sqlalchemy>=2.0.16",
    "tabulate>=0.9.0",
    "toml>=0.10",
    "tqdm>=4.65.0",
]
SUFFICIENT_PHASES = (
    "original",
    "empty",
    "responsibility",
    "sufficient-grow",
    "sufficient-minimise",
)

DRIVER = textwrap.dedent(
    '''
    """Runs ReX's spectral mode on clips; executed inside the ReX virtual environment."""
    import json, logging, sys, time
    import numpy as np
    import torch
    from rex_xai.lib import ReX
    from rex_xai.responsibility.prediction import Prediction
    from rex_xai.utils.logger import logger

    logger.setLevel(logging.ERROR)
    work = sys.argv[1]
    spec = json.load(open(f"{work}/job.json"))
    waves = np.load(f"{work}/clips.npy")
    if spec["model"] == "toy":
        from sigwarehouse.freqrex.toy import ToneClassifier, _Net
        net = _Net()
        net.load_state_dict(torch.load(f"{work}/toy.pt"))
        clf = ToneClassifier(net)
    else:
        from sigwarehouse.models.loader import load_classifier, model_labels
        path = spec["model"][4:]
        clf = load_classifier("zoo", path, model_labels("zoo", path))
    out = []
    for i, w in enumerate(waves):
        wave = torch.from_numpy(w)
        spectrum = torch.fft.rfft(wave)
        n_bins = spectrum.shape[0]
        count = [0]

        def predict(mutants, target=None, raw=False):
            mask = mutants.reshape(-1, n_bins) != 0
            with torch.no_grad():
                probs = clf(torch.fft.irfft(spectrum[None] * mask, n=wave.shape[0]))
            count[0] += mask.shape[0]
            if raw:
                return probs
            preds = []
            for row in probs:
                k = int(row.argmax())
                p = Prediction(k, float(row[k]))
                if target is not None:
                    p.target = target
                    p.target_confidence = float(row[target.classification])
                preds.append(p)
            return preds

        start = time.perf_counter()
        rex = ReX(None, [1, n_bins], "cpu", "spectral", prediction_function=predict)
        rex.args.seed = 0
        rex.args.progress_bar = False
        for key, value in spec["rex_args"].items():
            setattr(rex.args, key, value)
        rex.set_tabular_data("clip.npy", data=spectrum.abs().numpy()[None, :].astype("float32"))
        rex.set_target()
        rex.calculate_responsibility()
        rex.extract_sufficient_explanation()
        mask = rex.explanation.sufficiency_mask.reshape(-1)[:n_bins].cpu().numpy().astype(bool)
        out.append({
            "clip": i,
            "target": int(rex.data.target.classification),
            "queries": count[0],
            "seconds": time.perf_counter() - start,
            "mask": np.flatnonzero(mask).tolist(),
        })
        print(f"rex clip {i}: {count[0]} queries, {mask.mean():.4f} of bins", flush=True)
    json.dump(out, open(f"{work}/rex_results.json", "w"))
    '''
)


def ensure_rex_env(work: Path) -> Path:
    """The ReX venv's python, creating the venv and installing rex-xai if needed.

    Raises SystemExit with a clear message when rex-xai cannot be installed."""
    venv = work / "rex-venv"
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import rex_xai.lib, torch, sigwarehouse"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"installing rex-xai {REX_VERSION} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps = [pip + ["--no-deps", f"rex-xai=={REX_VERSION}"], pip + REX_DEPS]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"ReX could not be installed ({' '.join(step[4:])}):\n{done.stderr}")
    site = subprocess.run(
        [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import site as main_site

    # torch (and this project's source) from the benchmark's own environment; the ReX
    # venv's own packages (its numpy pin) come first on sys.path
    lines = [*main_site.getsitepackages(), str(ROOT / "src")]
    Path(site, "zz_sigwh_main_env.pth").write_text("\n".join(lines) + "\n")
    check = subprocess.run(probe, capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"ReX installed but cannot be imported:\n{check.stderr}")
    return py


def load_clips(args) -> np.ndarray:
    """(n, samples) float32: synthetic tone clips, or the first clips of --clips-dir
    (cut to --seconds so that all have one length)."""
    n_samples = int(args.seconds * 16000)
    if args.clips_dir is None:
        from sigwarehouse.freqrex.toy import LABELS, tone_clip

        rng = np.random.default_rng(5)
        labels = [LABELS[1 + k % 3] for k in range(args.n_clips)]  # low, high, chord
        return np.stack([tone_clip(lab, n_samples, rng) for lab in labels])
    import soundfile as sf

    files = sorted(p for p in Path(args.clips_dir).rglob("*") if p.suffix in (".wav", ".flac"))
    step = max(1, len(files) // args.n_clips)  # spread over the classes' folders
    clips = []
    for path in files[::step][: args.n_clips]:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != 16000:
            raise SystemExit(f"{path}: {sr} Hz, expected 16000")
        x = x.mean(axis=1)[:n_samples]
        clips.append(np.pad(x, (0, n_samples - len(x))))
    return np.stack(clips)


def load_model(spec: str, n_samples: int, work: Path):
    if spec == "toy":
        from sigwarehouse.freqrex.toy import train_tone_classifier

        clf = train_tone_classifier(n_samples=n_samples, seed=0)
        torch.save(clf.net.state_dict(), work / "toy.pt")
        return clf
    if spec.startswith("zoo:"):
        from sigwarehouse.models.loader import load_classifier, model_labels

        path = spec[4:]
        return load_classifier("zoo", path, model_labels("zoo", path))
    raise SystemExit(f"unknown --model {spec!r} (toy or zoo:<checkpoint>)")


def keeps_class(clf, waves: torch.Tensor, masks: list[np.ndarray], targets: list[int]) -> int:
    """How many masks keep their clip's class when re-run through the model here."""
    with torch.inference_mode():
        probs = clf(signals_for(waves, np.stack(masks)))
    return int((probs.argmax(dim=1).numpy() == np.asarray(targets)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="toy", help="toy or zoo:<checkpoint>")
    ap.add_argument("--clips-dir", default=None, help="audio folder (default: synthetic tones)")
    ap.add_argument("--n-clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--work-dir", default=os.environ.get("TMPDIR", "/tmp") + "/sigwh-bench-rex")
    ap.add_argument("--rex-iters", type=int, default=None, help="ReX iterations (its default 20)")
    args = ap.parse_args()
    if args.model.startswith("zoo:"):  # the ReX driver runs in the work dir
        args.model = "zoo:" + str(Path(args.model[4:]).resolve())
    torch.manual_seed(0)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    try:
        rex_python = ensure_rex_env(work)
    except SystemExit as exc:
        print(f"ReX UNAVAILABLE: {exc}")
        raise
    waves_np = load_clips(args)
    clf = load_model(args.model, waves_np.shape[1], work)
    np.save(work / "clips.npy", waves_np)
    rex_args = {} if args.rex_iters is None else {"iters": args.rex_iters}
    (work / "job.json").write_text(json.dumps({"model": args.model, "rex_args": rex_args}))
    (work / "rex_driver.py").write_text(DRIVER)
    print(f"{len(waves_np)} clips of {waves_np.shape[1]} samples; model {args.model}")

    start = time.perf_counter()
    env = {**os.environ, "TQDM_DISABLE": "1"}
    ran = subprocess.run(
        [str(rex_python), str(work / "rex_driver.py"), str(work)], cwd=work, env=env
    )
    if ran.returncode != 0:
        raise SystemExit("ReX's spectral mode failed on these clips (see its output above)")
    rex_seconds = time.perf_counter() - start
    rex = json.loads((work / "rex_results.json").read_text())

    waves = torch.from_numpy(waves_np)
    start = time.perf_counter()
    ours = explain(clf, waves, FreqrexParams())
    our_seconds = time.perf_counter() - start

    n_bins = waves.shape[1] // 2 + 1
    rex_masks = [np.isin(np.arange(n_bins), r["mask"]) for r in rex]
    rex_q = np.array([r["queries"] for r in rex])
    rex_share = np.array([m.mean() for m in rex_masks])
    rex_valid = keeps_class(clf, waves, rex_masks, [r["target"] for r in rex])

    our_q = np.array([e.queries for e in ours])
    our_q_suff = np.array(
        [sum(e.queries_by_phase.get(k, 0) for k in SUFFICIENT_PHASES) for e in ours]
    )
    has = [e for e in ours if e.sufficient_mask is not None]
    our_share = np.array([e.sufficient_share for e in has])
    our_valid = keeps_class(
        clf, waves[[e.clip_index for e in has]], [e.sufficient_mask for e in has],
        [e.label_index for e in has],
    )  # fmt: skip
    same_class = sum(r["target"] == e.label_index for r, e in zip(rex, ours, strict=True))

    print()
    print(f"{'engine':<28}{'median queries':>16}{'median suff. share':>20}{'valid':>8}{'s':>8}")
    print(
        f"{'ReX ' + REX_VERSION + ' spectral':<28}{np.median(rex_q):>16.0f}"
        f"{np.median(rex_share):>20.4f}{rex_valid:>5}/{len(rex):<2}{rex_seconds:>8.1f}"
    )
    print(
        f"{'freqrex (all phases)':<28}{np.median(our_q):>16.0f}"
        f"{np.median(our_share):>20.4f}{our_valid:>5}/{len(has):<2}{our_seconds:>8.1f}"
    )
    print(f"{'freqrex (sufficient only)':<28}{np.median(our_q_suff):>16.0f}")
    print(f"same original class on both sides: {same_class}/{len(ours)}")
    full = np.asarray([e.sufficient_reason != "empty-signal-keeps-class" for e in ours])
    if full.any() and not full.all():
        print(
            f"on the {int(full.sum())} clips whose empty signal does not keep the class:"
            f" median queries ReX {np.median(rex_q[full]):.0f},"
            f" freqrex {np.median(our_q[full]):.0f} (sufficient only"
            f" {np.median(our_q_suff[full]):.0f}); median share ReX"
            f" {np.median(rex_share[full]):.4f}"
        )
    print(f"per clip queries  ReX: {rex_q.tolist()}")
    print(f"per clip queries  freqrex: {our_q.tolist()} (sufficient only {our_q_suff.tolist()})")
    print(f"per clip share    ReX: {np.round(rex_share, 4).tolist()}")
    print(f"per clip share    freqrex: {np.round(our_share, 4).tolist()}")
    print(
        f"QUERY RATIO freqrex/ReX (medians): all phases {np.median(our_q) / np.median(rex_q):.3f},"
        f" sufficient only {np.median(our_q_suff) / np.median(rex_q):.3f}; "
        f"SIZE RATIO (medians) {np.median(our_share) / max(np.median(rex_share), 1e-12):.3f}"
    )


if __name__ == "__main__":
    main()
