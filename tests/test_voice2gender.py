"""voice2gender's booster (src/sigwarehouse/models/voice2gender.py): the shipped weights are
the wheel's, read without running code; the features and probabilities equal the package's
own on the gender set; a pitch the features must find; accuracy there."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from sigwarehouse import catalog
from sigwarehouse.corpus.build import read_manifest
from sigwarehouse.models import voice2gender as adapter

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "gender"
ROWS = read_manifest(DATA / "manifest.csv")
LABELS = ["female", "male"]

pytest.importorskip("xgboost", reason="the `pretrained` extra is not installed")
HAS_PACKAGE = importlib.util.find_spec("voice2gender") is not None
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE, reason="voice2gender is not installed (make setup adds it, --no-deps)"
)


def _wave(row: dict) -> np.ndarray:
    return sf.read(DATA / row["path"], dtype="float32")[0]


def _pcm_bytes(wave: np.ndarray) -> bytes:
    """The package's documented input: mono int16 PCM at 44.1 kHz (resampled here)."""
    y = resample_poly(wave.astype(np.float64), 441, 160)
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def model() -> adapter.Voice2Gender:
    return adapter.voice2gender()


@needs_package
def test_shipped_weights_are_the_wheels_booster():
    model_py = Path(importlib.util.find_spec("voice2gender").origin).parent / "_model.py"
    shipped = json.loads(adapter.load_weights())
    assert shipped == json.loads(adapter.booster_json(model_py))
    from voice2gender._model import booster  # the package's own loading of the same file

    assert (
        json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"][
            "gbtree_model_param"
        ]
        == shipped["learner"]["gradient_booster"]["model"]["gbtree_model_param"]
    )


@needs_package
def test_features_and_probabilities_equal_the_packages_own(model):
    from voice2gender import predict
    from voice2gender._preprocess import extract_features_from_pcm_sequence

    for row in ROWS:
        wave = _wave(row)
        raw = _pcm_bytes(wave)
        theirs = extract_features_from_pcm_sequence([raw], 44100)
        ours = adapter.features(np.frombuffer(raw, "<i2") / 32768.0)
        np.testing.assert_allclose(ours, [theirs[k] for k in adapter.FEATURE_NAMES], rtol=1e-12)
        female = predict([raw], sample_rate=44100)["female_probability"]
        np.testing.assert_allclose(model(wave[None])[0], [female, 1 - female], atol=1e-6)


def test_batched_equals_one_by_one(model):
    n = min(len(_wave(r)) for r in ROWS)
    x = np.stack([_wave(r)[:n] for r in ROWS[::2]] + [np.zeros(n, np.float32)])
    pcm = adapter.to_pcm(x)
    batched = adapter.features_batch(pcm)
    for row, got in zip(pcm, batched, strict=True):
        alone = adapter.features(row)
        assert (got is None) == (alone is None)
        if got is not None:
            np.testing.assert_array_equal(got, alone)
    np.testing.assert_array_equal(model(x), np.concatenate([model(w[None]) for w in x]))
    assert batched[-1] is None  # the silent row


@needs_package
def test_what_the_package_refuses_gets_even_odds(model):
    from voice2gender import predict

    for wave in (np.zeros(16000, np.float32), np.full(700, 0.1, np.float32)):
        with pytest.raises(ValueError):
            predict([_pcm_bytes(wave)], sample_rate=44100)
        np.testing.assert_array_equal(model(wave[None]), [[0.5, 0.5]])


def test_a_harmonic_tone_has_its_pitch_and_dominant_frequency():
    """Independent of the package: a 150 Hz tone with harmonics (the third loudest, at
    450 Hz) gives meanfun 0.150 kHz (cepstral F0 within one lag step) and meandom 0.45 kHz
    (within one 2048-point bin of 21.5 Hz)."""
    t = np.arange(44100) / 44100
    x = 0.3 * sum(a * np.sin(2 * np.pi * 150 * k * t) for k, a in ((1, 0.5), (2, 0.7), (3, 1)))
    f = dict(zip(adapter.FEATURE_NAMES, adapter.features(x), strict=True))
    assert f["meanfun"] == pytest.approx(0.150, abs=0.0006)  # lag 294 +- 1 at 44.1 kHz
    assert abs(f["meandom"] - 0.450) <= 0.0216 and f["dfrange"] < 0.0216
    assert f["mode"] == pytest.approx(0.150, abs=0.002)  # strongest below 280 Hz: 150 Hz


def test_accuracy_on_the_gender_set_is_the_catalogs(model):
    right = [LABELS[int(np.argmax(model(_wave(r)[None])[0]))] == r["label"] for r in ROWS]
    entry = catalog.load(REPO / "ingest").models["voice2gender"]
    assert (entry.accuracy, entry.accuracy_n) == (round(sum(right) / len(right), 3), len(ROWS))
    real = [ok for ok, r in zip(right, ROWS, strict=True) if r["source"].endswith("real]")]
    assert sum(real) >= 0.9 * len(real)


def test_weights_are_refused_when_changed_and_the_literal_never_runs_code(tmp_path, monkeypatch):
    bad = tmp_path / "w.json.gz"
    bad.write_bytes(gzip.compress(b"{}", mtime=0))
    with pytest.raises(ValueError, match=r"w\.json\.gz: SHA-256 .*convert_voice2gender"):
        adapter.load_weights(bad)
    # a _model.py whose "literal" is a call: refused by the hash, and by literal_eval even
    # when the hash is made to match
    marker = tmp_path / "ran"
    evil = tmp_path / "_model.py"
    evil.write_text(f"import json\nx = json.dumps(open({str(marker)!r}, 'w').write('x'))\n")
    with pytest.raises(ValueError, match=r"_model\.py: SHA-256"):
        adapter.booster_json(evil)
    monkeypatch.setattr(adapter, "MODEL_SHA256", hashlib.sha256(evil.read_bytes()).hexdigest())
    with pytest.raises(ValueError):
        adapter.booster_json(evil)
    assert not marker.exists()


def test_without_xgboost_the_error_names_the_install_command(monkeypatch):
    real_import = adapter.importlib.import_module

    def no_xgboost(name, *args):
        if name == "xgboost":
            raise ImportError("No module named 'xgboost'")
        return real_import(name, *args)

    monkeypatch.setattr(adapter.importlib, "import_module", no_xgboost)
    with pytest.raises(ImportError, match=r"pip install 'sigwarehouse\[pretrained\]'"):
        adapter.voice2gender()


def _numpy_cepstral_lags(frames: np.ndarray, lo: int) -> np.ndarray:
    """The package's cepstral peak, with plain numpy complex FFTs (its own code's way)."""
    spectrum = np.maximum(np.abs(np.fft.fft(frames, axis=1)), adapter.EPS)
    ceps = np.real(np.fft.ifft(np.log(spectrum), axis=1))
    return np.argmax(np.where(np.isfinite(ceps), ceps, 0.0)[:, lo : adapter.FRAME // 2], axis=1)


def test_cepstral_peaks_equal_numpys_complex_ffts():
    """The adapter finds the cepstral peak through a DCT of the real frames' log spectrum;
    on real clips, on sparse ones (a few rfft bins) and on the frames where rounding alone
    decides (flat cepstra: constant frames, as a gated silence or a DC level, and one
    sample standing out of a gated silence), its lag is the one numpy's complex FFT and
    inverse FFT give."""
    rng = np.random.default_rng(3)
    signals = []
    for row in ROWS[::3]:
        wave = _wave(row).astype(np.float64)
        spectrum = np.fft.rfft(wave)
        order = np.argsort(-np.abs(spectrum))
        for k in (1, 4, 16):
            mask = np.zeros(len(spectrum))
            mask[order[:k]] = 1.0
            signals.append(np.fft.irfft(spectrum * mask, n=len(wave)))
        signals.append(np.fft.irfft(spectrum * (rng.random(len(spectrum)) < 0.25), len(wave)))
        signals.append(wave)
    lo = adapter.PCM_RATE // 280
    frames = [np.full((1, adapter.FRAME), c) for c in (1e-6, 0.1, -0.5)]  # flat cepstra
    impulses = np.full((20, adapter.FRAME), 1e-6)
    impulses[np.arange(20), rng.integers(0, adapter.FRAME, 20)] = rng.uniform(-1, 1, 20)
    frames.append(impulses)
    for x in signals:
        pcm = adapter.to_pcm(x[None])[0]
        quiet = np.abs(pcm) <= np.max(np.abs(pcm)) * 0.05
        filled = np.where(quiet, 1e-6, pcm)
        n = (len(filled) - adapter.FRAME) // 1024 + 1
        frames.append(np.stack([filled[i * 1024 : i * 1024 + adapter.FRAME] for i in range(n)]))
    frames = np.concatenate(frames)
    got = adapter._cepstral_lags(frames, lo)
    np.testing.assert_array_equal(got, _numpy_cepstral_lags(frames, lo))
    assert got[0] == 256 - lo  # the package's answer for a gated silence: 172 Hz, voiced


def test_the_adapters_44k_pcm_is_scipys_default_resampling_rounded() -> None:
    """to_pcm (its low-pass designed once) gives exactly the samples of resample_poly's
    default design on every call, rounded to 16 bits (the package's documented input)."""
    waves = [_wave(row) for row in ROWS[::6]]
    for wave in waves:
        expected = np.frombuffer(_pcm_bytes(wave), dtype="<i2") / 32768.0
        np.testing.assert_array_equal(adapter.to_pcm(wave), expected)
