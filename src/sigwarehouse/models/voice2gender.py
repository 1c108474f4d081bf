"""voice2gender's XGBoost classifier as a `kind = "python"` model of the `gender` task.

`ref = "sigwarehouse.models.voice2gender:voice2gender"`: labels ["female", "male"] at
16 kHz. voice2gender 0.1.1 (PyPI, MIT; the `pretrained` extra) ships a gradient-boosted
tree ensemble trained on the 20 acoustic features of Kaggle's "voicegender" set; its
output is P(female).

Weights are data. The wheel keeps the booster as a JSON document written out as a Python
literal in `voice2gender/_model.py` (which the package turns into JSON and hands to
xgboost). voice2gender 0.1.1 itself cannot be installed with its dependencies on Python
3.11 (it asks for xgboost >= 3.4.1, which needs Python 3.12), so its booster is converted
once and shipped here: `tools/convert_voice2gender.py` checks `_model.py`'s SHA-256,
parses it with `ast`, evaluates only the literal (`booster_json`: `ast.literal_eval`,
which runs no code) and writes the JSON, gzipped, to `weights/voice2gender-0.1.1.json.gz`
beside this module. At run time that file's SHA-256 is checked and the JSON is loaded
with xgboost's own `Booster.load_model`. Nothing is unpickled or imported from the
package.

Features: the package documents its input as mono 16-bit PCM at 44.1 kHz, so a clip is
resampled 16 -> 44.1 kHz (polyphase, scipy) and rounded to 16 bits (x * 32768, clipped to
the int16 range), then the package's 20 features are computed here in numpy with its
definitions (its `_preprocess.py`, seewave's specprop / fund / dfreq conventions):

- whole-signal Hann-windowed magnitude spectrum between 0 and 280 Hz as a distribution:
  mean (= centroid), sd, median, Q25, Q75, IQR (kHz), skew, kurtosis, normalised
  entropy, flatness, mode;
- after zeroing samples within 5 % of the peak: cepstral F0 per 2048-sample frame (hop
  1024, 50-280 Hz) -> mean, min, max; Hann-windowed dominant frequency up to 7 kHz per
  2048-sample frame (hop 2048) -> mean, min, max, range, modulation index.

Cost: 6-10 ms per 2 s clip-query on one thread and 2 shared cores (batches of 64 masked
signals; 13-21 ms before the cepstra became DCTs of the real frames: 2.0-2.2x in the same
run); about a quarter of it is the whole-clip FFT of an awkward length, a fifth the
resampling; bench/bench_pretrained_speed.py measures both paths and their (nil)
difference.

A signal whose features are undefined (shorter than one 2048-sample frame, silent, no
energy below 280 Hz, no frame with an F0 in range: the package refuses these with a
ValueError) gets [0.5, 0.5]: the model has no answer, and a masked signal must still get
probabilities. tests/test_voice2gender.py checks features and probabilities against the
package's own `predict` on the same bytes.
"""

from __future__ import annotations

import ast
import gzip
import importlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import firwin, resample_poly

from sigwarehouse.models.pinned import checked_bytes

LABELS = ["female", "male"]
SAMPLE_RATE = 16000
PCM_RATE = 44100
VERSION = "0.1.1"
INSTALL = "install xgboost with `pip install 'sigwarehouse[pretrained]'` (or `make setup`)"
MODEL_FILE = "_model.py"  # in the voice2gender 0.1.1 wheel
MODEL_SHA256 = "0bd5b1e06a43c03477dde1cffe5ef9ac434bc029cf92f5ced152ef947c7eeb42"
WEIGHTS = Path(__file__).parent / "weights" / f"voice2gender-{VERSION}.json.gz"
WEIGHTS_SHA256 = "8eb2c271f4e28f6af02f32808cd146f25fcb894cc406ecdaab386da119bd7cd1"
FEATURE_NAMES = [
    "meanfreq", "sd", "median", "Q25", "Q75", "IQR", "skew", "kurt", "sp.ent", "sfm",
    "mode", "centroid", "meanfun", "minfun", "maxfun", "meandom", "mindom", "maxdom",
    "dfrange", "modindx",
]  # fmt: skip
FRAME = 2048
CHUNK = 16  # clips whose features are computed together
EPS = 1e-12


def booster_json(path: Path) -> bytes:
    """The booster JSON that `path` (voice2gender 0.1.1's _model.py) holds as a literal,
    after its SHA-256 is checked; ValueError naming the file and the fix otherwise."""
    fix = f"give the _model.py of the voice2gender {VERSION} wheel"
    source = checked_bytes(path, MODEL_SHA256, fix)
    tree = ast.parse(source)
    names: dict[str, ast.expr] = {}
    for node in tree.body:  # module-level `NAME = <literal>` (the feature names)
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = node.value
    dumps = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "dumps"
        and len(n.args) == 1
    ]
    if len(dumps) != 1:
        raise ValueError(f"{path}: expected one json.dumps(<literal>) holding the booster")

    class Inline(ast.NodeTransformer):
        # the literal names FEATURE_NAMES once; put its list in place so that it is a literal
        def visit_Name(self, node: ast.Name) -> ast.expr:
            if node.id not in names:
                raise ValueError(f"{path}: the booster literal uses {node.id!r}")
            return names[node.id]

    model = ast.literal_eval(Inline().visit(dumps[0].args[0]))
    return json.dumps(model).encode("utf-8")


def load_weights(path: Path = WEIGHTS) -> bytes:
    """The shipped booster JSON (gunzipped) after its SHA-256 is checked; ValueError naming
    the file and the fix otherwise."""
    fix = "restore it from the repository, or rebuild it with tools/convert_voice2gender.py"
    return gzip.decompress(checked_bytes(path, WEIGHTS_SHA256, fix))


def to_pcm(waves: np.ndarray) -> np.ndarray:
    """16 kHz float clips (any leading shape, time last) as the package's input: 44.1 kHz
    samples on the int16 grid, as float64 in [-1, 1) (int16 / 32768)."""
    x = np.asarray(waves, dtype=np.float64)
    up, down = PCM_RATE // 100, SAMPLE_RATE // 100
    y = resample_poly(x, up, down, axis=-1, window=_resampling_filter(up, down))
    return np.clip(np.round(y * 32768.0), -32768, 32767) / 32768.0


@lru_cache(maxsize=2)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """resample_poly's own default low-pass for up / down (a Kaiser-windowed sinc, beta 5,
    of 20 * max(up, down) + 1 taps), designed once: given as `window`, it gives the same
    samples, and spares a design of 8,821 taps on every call (1.4 ms, most of the
    resampling of the search's small batches)."""
    rate = max(up, down)
    return firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))


def _frames(x: np.ndarray, step: int) -> np.ndarray:
    """(batch, n_frames, FRAME) strided views (no copy) of the rows of x, frames starting
    every `step`."""
    return sliding_window_view(x, FRAME, axis=1)[:, ::step]


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return np.hanning(n)


def _cepstral_lags(frames: np.ndarray, lo: int) -> np.ndarray:
    """For frames (..., FRAME), strided views welcome: the lag in [lo, FRAME / 2) of each
    frame's largest real cepstrum value, minus lo, shaped frames.shape[:-1], as the package
    finds it: ifft(log max(|fft(frame)|, EPS)) with numpy's complex FFTs.

    log|X| of a real frame is real and even, so its inverse FFT is a DCT-I of its first
    FRAME / 2 + 1 values (times 1 / FRAME, which moves no argmax): a quarter of the
    complex work. The two differ by rounding only, which decides the argmax where the best
    lag beats the runner-up by less than rounding can move. Such frames exist: a flat
    cepstrum (a frame of one sample standing out of a gated silence; a constant frame,
    which the package answers with lag 256, 172 Hz, counted as voiced) has every lag equal
    but for rounding. Those frames are recomputed the package's way, so every lag is the
    package's (tests/test_voice2gender.py; bench/bench_pretrained_speed.py)."""
    log_mag = np.abs(np.fft.rfft(frames, axis=-1)).reshape(-1, FRAME // 2 + 1)
    np.log(np.maximum(log_mag, EPS, out=log_mag), out=log_mag)
    finite = np.isfinite(log_mag).all()  # (finite in, finite out: then no pass is needed)
    ceps = sfft.dct(log_mag, type=1, axis=1, overwrite_x=True)[:, lo : FRAME // 2]
    if not finite:
        ceps = np.where(np.isfinite(ceps), ceps, 0.0)
    k = np.argmax(ceps, axis=1)
    rows = np.arange(len(k))
    best = ceps[rows, k]
    ceps[rows, k] = -np.inf
    gap = best - np.max(ceps, axis=1)
    # a DCT value is a sum of FRAME terms of |log_mag| <= -log(EPS) (|X| <= FRAME for
    # samples in [-1, 1]), so either path's rounding moves it by ~1e-16 * FRAME * 28:
    # a gap below 1e-10 of that bound is one that rounding might decide
    fragile = np.flatnonzero(gap <= 1e-10 * FRAME * -np.log(EPS))
    if fragile.size:
        old = frames[np.unravel_index(fragile, frames.shape[:-1])]
        old = np.maximum(np.abs(np.fft.fft(old, axis=1)), EPS)
        old_ceps = np.real(np.fft.ifft(np.log(old), axis=1))
        old_ceps = np.where(np.isfinite(old_ceps), old_ceps, 0.0)
        k[fragile] = np.argmax(old_ceps[:, lo : FRAME // 2], axis=1)
    return k.reshape(frames.shape[:-1])


def _spectral(amp: np.ndarray, freq: np.ndarray) -> list[float] | None:
    """The 12 spectral features of one clip from its magnitudes at freq (0-280 Hz)."""
    if float(np.sum(amp)) <= EPS:
        return None
    p = amp / float(np.sum(amp))
    mean = float(np.sum(p * freq))
    sd = float(np.sqrt(max(float(np.sum(p * (freq - mean) ** 2)), 0.0)))
    s = float(np.std(p, ddof=1))
    if s <= EPS:
        skew = kurt = 0.0
    else:
        c = p - float(np.mean(p))
        skew = float(np.sum(c**3) / ((p.size - 1) * s**3))
        kurt = float(np.sum(c**4) / ((p.size - 1) * s**4))
    q = np.maximum(p, 1e-7)
    q /= float(np.sum(q))
    entropy = float(-np.sum(q * np.log(q)) / np.log(p.size))
    flat = p if p.size <= 4000 else p[:: max(1, int(round(p.size / 256)))]
    flat = np.maximum(flat, 1e-5)
    sfm = float(np.exp(np.mean(np.log(flat))) / max(float(np.mean(flat)), EPS))
    cum = np.cumsum(p)

    def at(level: float) -> float:
        return float(freq[min(int(np.searchsorted(cum, level, side="right")), freq.size - 1)])

    q25, median, q75 = at(0.25), at(0.5), at(0.75)
    mode = float(freq[int(np.argmax(p))])
    khz = [mean, sd, median, q25, q75, q75 - q25]
    return [v / 1000.0 for v in khz] + [skew, kurt, entropy, sfm, mode / 1000.0, mean / 1000.0]


def _tracks(f0: np.ndarray, dom: np.ndarray) -> list[float] | None:
    """The 8 F0 and dominant-frequency features of one clip from its valid frames' values."""
    if not f0.size or not dom.size:
        return None
    fun = f0 / 1000.0
    d = dom / 1000.0
    lo_d, hi_d = float(np.min(d)), float(np.max(d))
    rng = hi_d - lo_d
    modindx = 0.0 if d.size < 2 or rng <= EPS else float(np.mean(np.abs(np.diff(d))) / rng)
    return [float(np.mean(fun)), float(np.min(fun)), float(np.max(fun))] + [
        float(np.mean(d)),
        lo_d,
        hi_d,
        rng,
        modindx,
    ]


def features_batch(pcm: np.ndarray, sr: int = PCM_RATE) -> list[np.ndarray | None]:
    """The 20 features (FEATURE_NAMES order, float64) of each row of pcm (batch, samples)
    at sr, or None where the package would refuse the row. The FFTs run over the whole
    batch at once (each row gets the same bits as a call of its own; tested). The
    whole-clip FFT (an awkward length at 44.1 kHz) is now the dearest part; the cepstra
    of the ~90 frames per 2 s clip are a DCT each (see _cepstral_lags)."""
    b, n = pcm.shape
    if n < FRAME:
        return [None] * b
    magnitude = np.abs(pcm)
    peaks = np.max(magnitude, axis=1)
    # whole-signal spectrum, 0-280 Hz
    freq = np.arange(n // 2, dtype=np.float64) * (sr / n)
    keep = freq <= 280.0
    amp = np.abs(np.fft.rfft(pcm * _hann(n), axis=1)[:, : n // 2][:, keep])
    # cepstral F0 per frame (hop FRAME / 2) after the 5 % peak gate
    quiet = magnitude <= peaks[:, None] * 0.05  # 0 is quiet: the package's 1e-6 fill
    gated = np.where(quiet, 0.0, pcm)
    lo = sr // 280
    k = _cepstral_lags(_frames(np.where(quiet, 1e-6, pcm), FRAME // 2), lo)
    f0 = sr / (lo + k)
    voiced = (k > 0) & (f0 >= 50.0) & (f0 <= 280.0)
    # dominant frequency up to 7 kHz per Hann-windowed frame (hop FRAME)
    dfreq = np.fft.rfftfreq(FRAME, d=1.0 / sr)[:-1]
    band = dfreq <= 7000.0
    frames = (_frames(gated, FRAME) * _hann(FRAME)).reshape(-1, FRAME)
    spec = np.abs(np.fft.rfft(frames, axis=1)[:, :-1][:, band])
    nd = spec.shape[0] // b
    has_peak = (np.max(spec, axis=1) > EPS).reshape(b, nd)
    dom = dfreq[band][np.argmax(spec, axis=1)].reshape(b, nd)
    out: list[np.ndarray | None] = []
    for i in range(b):
        if float(peaks[i]) <= EPS:
            out.append(None)
            continue
        spectral = _spectral(amp[i], freq[keep])
        tracks = _tracks(f0[i][voiced[i]], dom[i][has_peak[i]])
        row = None if spectral is None or tracks is None else np.asarray(spectral + tracks)
        out.append(row if row is not None and np.isfinite(row).all() else None)
    return out


def features(pcm: np.ndarray, sr: int = PCM_RATE) -> np.ndarray | None:
    """The 20 features of one clip's samples at sr, or None (see features_batch)."""
    return features_batch(np.asarray(pcm, dtype=np.float64)[None], sr)[0]


class Voice2Gender:
    """voice2gender's booster on the package's 20 features: [P(female), P(male)]."""

    labels = LABELS
    sample_rate = SAMPLE_RATE

    def __init__(self):
        try:
            self._xgb: Any = importlib.import_module("xgboost")
        except ImportError as exc:
            raise ImportError(f"xgboost is not installed ({exc}); {INSTALL}") from exc
        self.booster = self._xgb.Booster()
        self.booster.load_model(bytearray(load_weights()))
        self.hashes = {WEIGHTS.name: WEIGHTS_SHA256, f"(converted from) {MODEL_FILE}": MODEL_SHA256}

    def female(self, rows: np.ndarray) -> np.ndarray:
        """P(female) for feature rows (n, 20), as the package computes it (float32 input)."""
        matrix = self._xgb.DMatrix(rows.astype(np.float32), feature_names=FEATURE_NAMES)
        return np.asarray(self.booster.predict(matrix), dtype=np.float64)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Probabilities (batch, 2) in LABELS order for float32 waves (batch, samples)."""
        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2 or waves.shape[1] == 0:
            raise ValueError(f"expected waveforms shaped (batch, samples > 0), got {waves.shape}")
        feats = []
        for i in range(0, len(waves), CHUNK):  # bounded memory: the frames of CHUNK clips
            feats += features_batch(to_pcm(waves[i : i + CHUNK]))
        out = np.full((len(waves), 2), 0.5)
        known = [i for i, f in enumerate(feats) if f is not None]
        if known:
            p = self.female(np.stack([feats[i] for i in known]))
            out[known, 0], out[known, 1] = p, 1.0 - p
        return out.astype(np.float32)


def voice2gender() -> Voice2Gender:
    """voice2gender 0.1.1 (MIT): XGBoost on 20 acoustic features; [0.5, 0.5] where undefined."""
    return Voice2Gender()
