"""The torch feature paths agree numerically with the Hugging Face numpy extractors.

The reference extractors are built locally from their default or explicit parameters
(nothing is downloaded). Tolerances achieved on CPU, float32: wav2vec2 normalisation
< 1e-6, Whisper log-mel < 1e-5 (torch path of HF) and < 5e-5 (numpy path), AST fbank
< 3e-4 after normalisation, i.e. ~1e-4 relative (HF keeps the spectrum in complex64).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import ASTFeatureExtractor, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

from sigwarehouse.models import features

SR = 16000
CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def _synthetic(n: int) -> np.ndarray:
    """Three deterministic clips of n samples: a chirp in noise, noise, a tone with silence."""
    rng = np.random.default_rng(7)
    t = np.arange(n) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (150 + 900 * t) * t) + 0.02 * rng.standard_normal(n)
    noise = 0.1 * rng.standard_normal(n)
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) * (t < t[-1] / 2)  # second half digital silence
    return np.stack([chirp, noise, tone]).astype(np.float32)


def _real_clips(n: int) -> np.ndarray | None:
    """Two clips of each task's committed eval split, cut to n samples (None if absent)."""
    paths = sorted(CORPUS.glob("*/eval/*/*.flac"))
    clips = []
    for path in paths[:: max(1, len(paths) // 6)][:6]:
        x, sr = sf.read(path, dtype="float32")
        if sr == SR and len(x) >= n:
            clips.append(x[:n])
    return np.stack(clips) if clips else None


@pytest.fixture(scope="module", params=["synthetic", "corpus"])
def batch(request) -> np.ndarray:
    n = int(1.37 * SR)  # not a multiple of the hop: exercises the frame arithmetic
    x = _synthetic(n) if request.param == "synthetic" else _real_clips(n)
    if x is None:
        pytest.skip("no committed eval corpus yet")
    return x


def test_wav2vec2_normalisation_matches_hf(batch):
    ref = Wav2Vec2FeatureExtractor(do_normalize=True)(list(batch), sampling_rate=SR)
    got = features.wav2vec2_normalize(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(got, np.stack(ref["input_values"]), atol=1e-5, rtol=0)
    assert np.abs(got.mean(axis=1)).max() < 1e-5
    np.testing.assert_allclose(got.std(axis=1), 1.0, atol=1e-3)


def test_whisper_log_mel_matches_hf_30s_window(batch):
    fe = WhisperFeatureExtractor()  # 80 bins, n_fft 400, hop 160, 30 s window
    ref = fe(list(batch), sampling_rate=SR, return_tensors="np")["input_features"]
    got = features.whisper_log_mel(torch.from_numpy(batch)).numpy()
    assert got.shape == ref.shape == (len(batch), 80, 3000)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # and the extractor's pure-numpy path (the one used without torch)
    padded = np.stack([np.pad(x, (0, fe.n_samples - len(x))) for x in batch])
    np.testing.assert_allclose(got, fe._np_extract_fbank_features(padded, "cpu"), atol=5e-5)


def test_whisper_log_mel_explicit_parameters(batch):
    """128 bins (large-v3 style) on the clip's own length, as zoo models use it."""
    fe = WhisperFeatureExtractor(feature_size=128)
    ref = fe(list(batch), sampling_rate=SR, padding="longest", return_tensors="np")
    got = features.whisper_log_mel(torch.from_numpy(batch), n_mels=128, n_samples=None)
    assert got.shape == (len(batch), 128, batch.shape[1] // 160)
    np.testing.assert_allclose(got.numpy(), ref["input_features"], atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
@pytest.mark.parametrize(
    "params",
    [{}, {"num_mel_bins": 64, "max_length": 100}, {"do_normalize": False, "max_length": 300}],
    ids=["default", "64bins-truncated", "raw-padded"],
)
def test_ast_fbank_matches_hf(batch, params):
    fe = ASTFeatureExtractor(**params)
    ref = np.stack(fe(list(batch), sampling_rate=SR)["input_values"])
    got = features.ast_fbank(
        torch.from_numpy(batch),
        num_mel_bins=fe.num_mel_bins,
        max_length=fe.max_length,
        normalize=fe.do_normalize,
        mean=fe.mean,
        std=fe.std,
    ).numpy()
    assert got.shape == ref.shape == (len(batch), fe.max_length, fe.num_mel_bins)
    # float32 here vs float64 framing + complex64 spectra there: ~1e-4 relative on log values
    np.testing.assert_allclose(got, ref, atol=3e-4 if fe.do_normalize else 1e-3, rtol=2e-4)


def test_features_are_batch_independent():
    """A clip's features do not depend on the other clips in its batch."""
    x = torch.from_numpy(_synthetic(SR))
    for fn in (
        features.wav2vec2_normalize,
        lambda w: features.whisper_log_mel(w, n_samples=None),
        features.ast_fbank,
    ):
        whole = fn(x)
        alone = torch.cat([fn(x[i : i + 1]) for i in range(len(x))])
        torch.testing.assert_close(whole, alone, atol=1e-5, rtol=1e-5)


def test_too_short_clips_are_refused():
    with pytest.raises(ValueError, match="samples"):
        features.ast_fbank(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="samples"):
        features.whisper_log_mel(torch.zeros(1, 150), n_samples=None)
