"""Training augmentation: seeded (the zoo retrains to the same weights) and each step
does what its docstring promises, on real corpus clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sigwarehouse.models import augment

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    """Eight real eval clips from across the tasks, cut to 1.5 s."""
    waves = [sf.read(p, dtype="float32")[0] for p in sorted(CORPUS.glob("*/eval/*/*.flac"))]
    long_enough = [w[:24000] for w in waves if len(w) >= 24000]
    return torch.from_numpy(np.stack(long_enough[:: len(long_enough) // 8][:8]))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_same_seed_gives_the_same_batch(clips):
    a, b = augment.augment(clips, _gen(3)), augment.augment(clips, _gen(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a, augment.augment(clips, _gen(4)))
    assert a.shape == clips.shape and a.dtype == torch.float32


def test_time_shift_is_a_roll_within_a_tenth(clips):
    shifted = augment.time_shift(clips, _gen())
    n = clips.shape[1]
    for row, orig in zip(shifted, clips, strict=True):
        found = [k for k in range(-n // 10, n // 10 + 1) if torch.equal(torch.roll(orig, k), row)]
        assert found, "each row is its clip rolled by at most a tenth of its length"


def test_gain_stays_within_three_db(clips):
    ratio_db = 20 * torch.log10(augment.random_gain(clips, _gen()).norm(dim=1) / clips.norm(dim=1))
    assert ratio_db.abs().max() <= augment.GAIN_DB + 1e-4
    assert ratio_db.std() > 0.1  # the gains differ between clips


def test_noise_is_pink_at_the_drawn_snr(clips):
    x = clips.repeat(8, 1)  # 64 rows: both noisy and clean ones occur
    noise = augment.add_noise(x, _gen()) - x
    noisy = noise.norm(dim=1) > 0
    assert 0 < int(noisy.sum()) < len(x)
    snr = 20 * torch.log10(x[noisy].norm(dim=1) / noise[noisy].norm(dim=1))
    assert snr.min() >= augment.SNR_DB[0] - 0.01 and snr.max() <= augment.SNR_DB[1] + 0.01
    power = torch.fft.rfft(noise[noisy]).abs().square().sum(0)
    freqs = torch.fft.rfftfreq(x.shape[1], 1 / augment.SAMPLE_RATE)
    low = power[(freqs > 100) & (freqs < 200)].mean()
    high = power[(freqs > 3200) & (freqs < 6400)].mean()
    # 1/f: 32 times the frequency, 15 dB less power per bin
    assert 10 * torch.log10(low / high) == pytest.approx(15.05, abs=1.5)


def test_eq_is_mild_in_the_speech_band():
    b, n = 400, 24000
    curve = augment.eq_curve(b, n, _gen())
    freqs = torch.fft.rfftfreq(n, 1 / augment.SAMPLE_RATE)
    band = (freqs > 300) & (freqs < 4600)  # from above every high-pass to calm's 4.5 kHz
    db = 20 * torch.log10(curve[:, band])
    # tilt (half its range either way) + peak; the low-pass, at 6 kHz or more, adds < 0.5 dB
    assert db.abs().max() <= augment.TILT_DB / 2 + augment.PEAK_DB + 0.5
    assert db.std() > 1.0  # and the curves do differ


def test_band_limit_has_its_corners_and_switches_off():
    freqs = torch.tensor([0.0, 50.0, 100.0, 200.0, 1000.0, 3000.0, 6000.0, 7000.0, 8000.0])
    flat = torch.ones(3, len(freqs))
    lowpass = torch.tensor([[6000.0], [torch.inf], [torch.inf]])
    highpass = torch.tensor([[0.0], [100.0], [0.0]])
    db = 20 * torch.log10(augment.band_limit(flat, freqs, lowpass, highpass))
    assert db[0, 6] == pytest.approx(-3.01, abs=0.01)  # -3 dB at the low-pass corner
    assert db[0, 8] < -9.0 and db[0, 4].abs() < 1e-3
    assert db[1, 2] == pytest.approx(-3.01, abs=0.01)  # and at the high-pass corner
    assert db[1, 1] == pytest.approx(-24.1, abs=0.2)  # an octave below: -24 dB
    assert torch.equal(db[2], torch.zeros(len(freqs)))  # both off: exactly flat


def test_emotion_keeps_only_the_band_limits():
    """With eq_scale 0 (emotion) the curve is flat between the band edges, and the draws
    are the same as at full depth, so every other step sees the same random numbers."""
    assert augment.TASK_EQ_SCALE["emotion"] == 0.0
    b, n = 200, 24000
    curve = augment.eq_curve(b, n, _gen(), eq_scale=0.0)
    freqs = torch.fft.rfftfreq(n, 1 / augment.SAMPLE_RATE)
    mid = (freqs > 800) & (freqs < 2000)  # the filters there are within 2e-4 of 1
    torch.testing.assert_close(curve[:, mid], torch.ones_like(curve[:, mid]), atol=2e-4, rtol=0)
    assert curve.max() <= 1.0 and curve[:, freqs > 7900].min() < 0.5  # some clips low-passed
    full, none = _gen(), _gen()
    augment.eq_curve(b, n, full)
    augment.eq_curve(b, n, none, eq_scale=0.0)
    assert torch.equal(torch.rand(4, generator=full), torch.rand(4, generator=none))
