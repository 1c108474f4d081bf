"""freqrex against ReX's spectral mode: queries per explanation and sufficient-set size.

    python bench/bench_vs_rex.py                         # the tone model, synthetic clips
    python bench/bench_vs_rex.py --model zoo:data/zoo/emotion/vc1.safetensors \
        --clips-dir data/corpus/emotion/eval --n-clips 6

ReX (`rex-xai` on PyPI) is a peer to compare with, not a dependency: the benchmark
installs it into its own virtual environment under --work-dir (default
/tmp/sigwh-bench-rex), with ReX's pinned numpy, and lets that environment see this
project's torch and source through a .pth file, so both sides run the *same* model
code and weights. ReX's spectral mode treats a 1-D array as contiguous boxes; we give
it each clip's rfft magnitude |S| with mask value 0, and its prediction function turns
ReX's mutant back into a bin mask (zeroed bins removed), builds irfft(mask * S) and
calls the model, counting every mutant it evaluates, per phase (target, responsibility,
extraction). ReX runs with its own defaults (20 iterations, min box 10, chunk 10,
batch 1, seed 0); freqrex with its defaults.

ReX's sufficient sets are reported two ways, because ReX 0.4.1's own extraction does
not return the bins it ranks. `ReX.extract_sufficient_explanation` (rex_xai/lib.py)
runs `Explanation.extract` -> `__global` (rex_xai/explanation/explanation.py; the
default global strategy, which spectral data also gets for "spatial"): it ranks the
responsibility map with `get_map_locations` and adds `chunk_size` ranked locations per
step through `__build_insertion_mask`, which calls `set_boolean_mask_value`
(rex_xai/utils/_utils.py).
For "spectral"/"tabular" data a location (0, j) of the (1, n_bins) map gives h = 0,
w = j and the function sets `tensor[0, h:w]`, i.e. bins [0, j) -- not bin j. With the
running OR over steps every mask ReX tries, and so every mask it returns, is a low-pass
prefix [0, k) whose size says how high the highest-ranked bin so far lies, not how many
bins the class needs (checked on every clip: "low-pass prefixes" in the output).

  (a) "ReX as shipped": ReX's returned `sufficiency_mask`, as the library produces it.
  (b) "ReX ranking, per-bin extraction" (written here, in the driver): ReX's ranking of
      bins from its computed responsibility map for the target (responsibility high to
      low, equal values in falling bin order, the order ReX's `get_map_locations` gives;
      checked equal on every clip), then insertion as ReX means it (and as its image
      mode does it, where a ranked location (h, w) sets that one pixel): the k * chunk
      highest-ranked bins for k = 1, 2, ... (ReX's chunk_size, last mask all bins),
      `batch_size` masks per model call, stopping at the first mask whose top-1 class
      is the target (ReX's default minimum confidence threshold is 0, so only the class
      counts). Its queries are counted and added to ReX's target and responsibility
      queries, which (a) and (b) share.

The fair comparison of set sizes is freqrex against (b); (a) is printed for reference.
Every sufficient mask of both ReX rows and of freqrex is re-run here through the model
with a direct call (irfft(mask * rfft(wave)) for ReX's, `signals_for` for freqrex's)
and counted valid when its top-1 class is the clip's class.

Printed per row: median model queries per explanation (ReX: target + responsibility +
that extraction; the extraction's own median beside it), median sufficient-set size in
bins and as a share of bins, valid masks, seconds. freqrex's queries are shown in total
(responsibility, sufficient *and* delta-complete search, minimisation, verification)
and for the sufficient explanation alone. Then per clip queries and bins for every row,
and the ratios freqrex / ReX per-bin. Target: at most half ReX's queries, sets no
larger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from bench_explanations import removable_share  # bench/ is on the path of its scripts

from sigwarehouse import noise_floor
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
    """Runs ReX's spectral mode on clips; executed inside the ReX virtual environment.

    Per clip: ReX's target, responsibility and shipped extraction (queries counted per
    phase through the prediction function), then the per-bin extraction of ReX's own
    ranking, written here (see the benchmark's docstring)."""
    import json, logging, sys, time
    import numpy as np
    import torch
    from rex_xai.lib import ReX
    from rex_xai.responsibility.prediction import Prediction
    from rex_xai.utils._utils import get_map_locations
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
    elif spec["model"].startswith("vad:"):
        from sigwarehouse.models.python import PythonClassifier
        from sigwarehouse.models.vad import LABELS
        clf = PythonClassifier("sigwarehouse.models.vad:" + spec["model"][4:], list(LABELS))
    else:
        from pathlib import Path
        from sigwarehouse.models.labels import model_labels
        from sigwarehouse.models.loader import load_classifier
        path = spec["model"][4:]
        kind = "hf" if Path(path).is_dir() else "zoo"  # as the benchmark's _kind
        clf = load_classifier(kind, path, model_labels(kind, path))


    def ranking_of(resp):
        # ReX's order over its map: responsibility high to low; equal responsibility in
        # falling bin order (ReX sorts (value, location) pairs in reverse)
        bins = np.arange(resp.size)
        return np.lexsort((-bins, -resp))


    def per_bin_extraction(spectrum, n, order, target, step, batch):
        # insertion over ReX's ranking, mask k = the k*step highest-ranked bins (the
        # last mask all bins); `batch` masks per model call, as ReX's batch size; the
        # first mask (in ranking order) whose top-1 class is the target is returned
        sizes = list(range(step, n, step)) + [n]
        queries = 0
        for first in range(0, len(sizes), batch):
            group = sizes[first : first + batch]
            masks = torch.zeros((len(group), spectrum.shape[0]), dtype=torch.bool)
            for row, k in enumerate(group):
                masks[row, torch.from_numpy(order[:k])] = True
            with torch.no_grad():
                probs = clf(torch.fft.irfft(spectrum[None] * masks, n=n_samples))
            queries += len(group)
            hits = torch.nonzero(probs.argmax(dim=1) == target).flatten()
            if hits.numel():
                return masks[int(hits[0])].numpy(), queries, True
        return np.ones(spectrum.shape[0], dtype=bool), queries, False


    out = []
    n_samples = waves.shape[1]
    for i, w in enumerate(waves):
        wave = torch.from_numpy(w)
        spectrum = torch.fft.rfft(wave)
        n_bins = spectrum.shape[0]
        count = {}
        phase = [None]

        def predict(mutants, target=None, raw=False):
            mask = mutants.reshape(-1, n_bins) != 0
            with torch.no_grad():
                probs = clf(torch.fft.irfft(spectrum[None] * mask, n=n_samples))
            count[phase[0]] = count.get(phase[0], 0) + mask.shape[0]
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

        seconds = {}
        rex = ReX(None, [1, n_bins], "cpu", "spectral", prediction_function=predict)
        rex.args.seed = 0
        rex.args.progress_bar = False
        for key, value in spec["rex_args"].items():
            setattr(rex.args, key, value)
        rex.set_tabular_data("clip.npy", data=spectrum.abs().numpy()[None, :].astype("float32"))
        phases = (("target", rex.set_target), ("responsibility", rex.calculate_responsibility))
        for name, run in phases:
            phase[0] = name
            start = time.perf_counter()
            run()
            seconds[name] = time.perf_counter() - start
        target = int(rex.data.target.classification)
        resp_map = np.array(rex.maps.get(target))
        resp = resp_map.astype(np.float64).reshape(-1)
        assert resp.size == n_bins, (resp_map.shape, n_bins)
        # the ranking ReX's extraction walks, to check ranking_of against it
        rex_order = np.array([int(loc[-1]) for _, loc in get_map_locations(resp_map)])

        phase[0] = "extract"
        start = time.perf_counter()
        rex.extract_sufficient_explanation()
        seconds["extract"] = time.perf_counter() - start
        shipped = rex.explanation.sufficiency_mask.reshape(-1)[:n_bins].cpu().numpy().astype(bool)

        start = time.perf_counter()
        order = ranking_of(resp)
        per_bin, per_bin_q, found = per_bin_extraction(
            spectrum, n_bins, order, target, rex.args.chunk_size, rex.args.batch_size
        )
        seconds["per-bin"] = time.perf_counter() - start
        out.append({
            "clip": i,
            "target": target,
            "queries": count,
            "per_bin_queries": per_bin_q,
            "per_bin_found": found,
            "seconds": seconds,
            "chunk": rex.args.chunk_size,
            "batch": rex.args.batch_size,
            "mask": np.flatnonzero(shipped).tolist(),
            "per_bin_mask": np.flatnonzero(per_bin).tolist(),
            "ranking_matches_rex": bool(np.array_equal(order, rex_order)),
            "map_shape": list(resp_map.shape),
            "top_ranked": order[:5].tolist(),
        })
        print(
            f"rex clip {i}: queries {count}; shipped extraction {int(shipped.sum())} bins,"
            f" per-bin extraction {int(per_bin.sum())} bins in {per_bin_q} queries",
            flush=True,
        )
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
        from sigwarehouse.models.labels import model_labels
        from sigwarehouse.models.loader import load_classifier

        path = spec[4:]
        return load_classifier(_kind(path), path, model_labels(_kind(path), path))
    if spec.startswith("vad:"):  # a pretrained detector of the speech task (extra [vad])
        from sigwarehouse.models.python import PythonClassifier
        from sigwarehouse.models.vad import LABELS

        name = spec[4:]
        if name not in ("silero", "webrtc", "earshot"):
            raise SystemExit(f"unknown detector {name!r} (silero, webrtc or earshot)")
        return PythonClassifier(f"sigwarehouse.models.vad:{name}", list(LABELS))
    raise SystemExit(f"unknown --model {spec!r} (toy, zoo:<checkpoint> or vad:<detector>)")


def rfft_signals(waves: torch.Tensor, masks: list[np.ndarray]) -> torch.Tensor:
    """irfft(mask * rfft(wave)) per clip: ReX's masks, rebuilt here without ReX."""
    keep = torch.from_numpy(np.stack(masks))
    return torch.fft.irfft(torch.fft.rfft(waves) * keep, n=waves.shape[1])


def keeps_class(clf, signals: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Per masked signal: does the model here give it its clip's class (top-1)?"""
    with torch.inference_mode():
        probs = clf(signals)
    return probs.argmax(dim=1).numpy() == np.asarray(targets)


def is_prefix(mask: np.ndarray) -> bool:
    """Is the mask the low-pass band [0, k) of its k kept bins?"""
    return bool(mask[: int(mask.sum())].all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--model", default="toy", help="toy, zoo:<checkpoint> or vad:<silero|webrtc|earshot>"
    )
    ap.add_argument("--clips-dir", default=None, help="audio folder (default: synthetic tones)")
    ap.add_argument("--n-clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--work-dir", default=os.environ.get("TMPDIR", "/tmp") + "/sigwh-bench-rex")
    ap.add_argument("--rex-iters", type=int, default=None, help="ReX iterations (its default 20)")
    ap.add_argument(
        "--margin",
        default="floor",
        help="freqrex's starting decision margin: 'floor' (the model's rendering noise floor "
        "measured on these clips, as `sigwh ingest` measures it on its task's clips), 'none' "
        "(the parameters' own) or a number",
    )
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

    # ReX's results depend only on the clips, the model, ReX's version and its arguments:
    # kept under a key of those, so that comparing engine versions does not rerun ReX
    # each time (delete the file to run ReX again after changing the driver)
    job_key = hashlib.sha256(
        waves_np.tobytes() + (work / "job.json").read_bytes() + REX_VERSION.encode()
    ).hexdigest()[:16]
    cached = work / f"rex_results-{job_key}.json"
    if cached.exists():
        print(f"ReX results reused from {cached}")
    else:
        env = {**os.environ, "TQDM_DISABLE": "1"}
        ran = subprocess.run(
            [str(rex_python), str(work / "rex_driver.py"), str(work)], cwd=work, env=env
        )
        if ran.returncode != 0:
            raise SystemExit("ReX's spectral mode failed on these clips (see its output above)")
        (work / "rex_results.json").replace(cached)
    rex = json.loads(cached.read_text())

    params = FreqrexParams()
    waves = torch.from_numpy(waves_np)
    margin = None
    if args.margin == "floor":
        margin = noise_floor.summary(*noise_floor.signal_moves(clf, list(waves)))["noise_floor"]
    elif args.margin != "none":
        margin = float(args.margin)
    print(f"freqrex's starting margin: {margin if margin is not None else params.decision_margin}")
    start = time.perf_counter()
    ours = explain(clf, waves, params, margin=margin)
    our_seconds = time.perf_counter() - start

    n_bins = waves.shape[1] // 2 + 1
    targets = [r["target"] for r in rex]
    # ReX's queries: target + responsibility (shared by both extractions) + extraction
    shared_q = np.array([r["queries"]["target"] + r["queries"]["responsibility"] for r in rex])
    shipped_xq = np.array([r["queries"]["extract"] for r in rex])
    per_bin_xq = np.array([r["per_bin_queries"] for r in rex])
    shared_s = sum(r["seconds"]["target"] + r["seconds"]["responsibility"] for r in rex)
    shipped_s = shared_s + sum(r["seconds"]["extract"] for r in rex)
    per_bin_s = shared_s + sum(r["seconds"]["per-bin"] for r in rex)
    shipped = [np.isin(np.arange(n_bins), r["mask"]) for r in rex]
    per_bin = [np.isin(np.arange(n_bins), r["per_bin_mask"]) for r in rex]
    shipped_ok = keeps_class(clf, rfft_signals(waves, shipped), targets)
    per_bin_ok = keeps_class(clf, rfft_signals(waves, per_bin), targets)

    our_q = np.array([e.queries for e in ours])
    our_q_suff = np.array(
        [sum(e.queries_by_phase.get(k, 0) for k in SUFFICIENT_PHASES) for e in ours]
    )
    has = [e for e in ours if e.sufficient_mask is not None]
    our_masks = [np.asarray(e.sufficient_mask, dtype=bool) for e in has]
    our_ok = keeps_class(
        clf,
        signals_for(waves[[e.clip_index for e in has]], np.stack(our_masks), params),
        [e.label_index for e in has],
    )
    same_class = sum(r["target"] == e.label_index for r, e in zip(rex, ours, strict=True))

    rows = [
        (f"ReX {REX_VERSION} as shipped (prefix)", shared_q + shipped_xq, shipped_xq, shipped,
         shipped_ok, shipped_s),
        ("ReX ranking, per-bin extraction", shared_q + per_bin_xq, per_bin_xq, per_bin,
         per_bin_ok, per_bin_s),
        ("freqrex (all phases)", our_q, None, our_masks, our_ok, our_seconds),
    ]  # fmt: skip
    print()
    print(
        f"{'engine':<36}{'med. queries':>13}{'extract q.':>11}{'suff. bins':>11}"
        f"{'suff. share':>12}{'valid':>8}{'s':>8}"
    )
    for name, q, xq, masks, ok, secs in rows:
        xq_text = "-" if xq is None else f"{np.median(xq):.0f}"
        sizes = [int(m.sum()) for m in masks]
        print(
            f"{name:<36}{np.median(q):>13.0f}{xq_text:>11}{np.median(sizes):>11.0f}"
            f"{np.median([m.mean() for m in masks]):>12.4f}{int(ok.sum()):>5}/{len(ok):<2}"
            f"{secs:>8.1f}"
        )
    print(f"{'freqrex (sufficient only)':<36}{np.median(our_q_suff):>13.0f}")
    print(
        f"ReX queries: target + responsibility {np.median(shared_q):.0f} (median), shared by"
        f" both extractions; chunk {rex[0]['chunk']} bins, batch {rex[0]['batch']}"
    )
    print(
        f"ReX's shipped masks that are low-pass prefixes [0, k): "
        f"{sum(is_prefix(m) for m in shipped)}/{len(shipped)}; per-bin masks: "
        f"{sum(is_prefix(m) for m in per_bin)}/{len(per_bin)}; ranking_of equals ReX's "
        f"get_map_locations order on {sum(r['ranking_matches_rex'] for r in rex)}/{len(rex)};"
        f" per-bin extraction found the class before the full mask on "
        f"{sum(r['per_bin_found'] for r in rex)}/{len(rex)}"
    )
    print(f"same original class on both sides: {same_class}/{len(ours)}")
    full = np.asarray([e.sufficient_reason != "empty-signal-keeps-class" for e in ours])
    if full.any() and not full.all():
        print(
            f"on the {int(full.sum())} clips whose empty signal does not keep the class:"
            f" median queries ReX per-bin {np.median((shared_q + per_bin_xq)[full]):.0f}"
            f" (shipped {np.median((shared_q + shipped_xq)[full]):.0f}),"
            f" freqrex {np.median(our_q[full]):.0f} (sufficient only"
            f" {np.median(our_q_suff[full]):.0f}); median bins ReX per-bin"
            f" {np.median([per_bin[i].sum() for i in np.flatnonzero(full)]):.0f}"
            f" (shipped {np.median([shipped[i].sum() for i in np.flatnonzero(full)]):.0f})"
        )
    print(
        f"per clip queries  ReX shipped: {(shared_q + shipped_xq).tolist()}"
        f" (extraction {shipped_xq.tolist()})"
    )
    print(
        f"per clip queries  ReX per-bin: {(shared_q + per_bin_xq).tolist()}"
        f" (extraction {per_bin_xq.tolist()})"
    )
    print(f"per clip queries  freqrex: {our_q.tolist()} (sufficient only {our_q_suff.tolist()})")
    print(f"per clip bins     ReX shipped: {[int(m.sum()) for m in shipped]}")
    print(f"per clip bins     ReX per-bin: {[int(m.sum()) for m in per_bin]}")
    print(f"per clip bins     freqrex: {[int(m.sum()) for m in our_masks]}")
    # every stored mask of up to per_bin_limit kept bins, re-checked bin by bin from
    # outside the engine (numpy FFTs, a direct model call): the share of its kept bins
    # whose single removal keeps the property (0: 1-minimal per bin)
    shares = {"sufficient": [], "complete": []}
    for wave, e in zip(waves.numpy(), ours, strict=True):
        for kind, mask in (("sufficient", e.sufficient_mask), ("complete", e.complete_mask)):
            if mask is not None and 0 < mask.sum() <= params.per_bin_limit:
                share = removable_share(
                    clf, wave, mask, e.label_index, e.confidence, params, kind == "complete",
                    margin=e.decision_margin,
                )  # fmt: skip
                shares[kind].append(round(share, 4))
    print(f"per clip bins     freqrex complete: {[_size(e.complete_mask) for e in ours]}")
    for kind, got in shares.items():
        print(
            f"{kind} masks of <= {params.per_bin_limit} bins, removable share by an"
            f" independent check: {got} ({sum(x == 0 for x in got)}/{len(got)} 1-minimal)"
        )
    fair_q = np.median(shared_q + per_bin_xq)
    fair_bins = max(float(np.median([m.sum() for m in per_bin])), 1e-12)
    print(
        f"RATIOS freqrex / ReX per-bin (medians): queries all phases"
        f" {np.median(our_q) / fair_q:.3f}, sufficient only {np.median(our_q_suff) / fair_q:.3f};"
        f" sufficient bins {np.median([m.sum() for m in our_masks]) / fair_bins:.3f}"
    )


def _size(mask) -> int | None:
    return None if mask is None else int(mask.sum())


def _kind(path) -> str:
    """A zoo model is a Hugging Face directory (kind hf) or the CNN's file (kind zoo)."""
    from pathlib import Path as _Path

    return "hf" if _Path(path).is_dir() else "zoo"


if __name__ == "__main__":
    main()
