"""Waveform helpers shared by the corpus renderers: load, resample, trim, fit, level, write."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

SR = 16000
MIN_S = 1.0
MAX_S = 4.0


def resample(x: np.ndarray, sr_in: int, sr_out: int = SR) -> np.ndarray:
    """x resampled from sr_in to sr_out with a polyphase filter (float64)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float64)
    g = gcd(sr_in, sr_out)
    return resample_poly(np.asarray(x, dtype=np.float64), sr_out // g, sr_in // g)


def load_mono(path: str | Path, sr: int = SR) -> np.ndarray:
    """The file at path as a mono float64 waveform at sr (channels averaged)."""
    x, sr_in = sf.read(str(path), dtype="float64", always_2d=True)
    return resample(x.mean(axis=1), sr_in, sr)


def load_raw16(path: str | Path, sr_in: int = SR) -> np.ndarray:
    """A headerless little-endian 16-bit mono file as float64 at SR."""
    x = np.fromfile(str(path), dtype="<i2").astype(np.float64) / 32768.0
    return resample(x, sr_in)


def telephone(x: np.ndarray) -> np.ndarray:
    """x squeezed through an 8 kHz channel (band-limited to 4 kHz), back at SR, same length."""
    return resample(resample(x, SR, 8000), 8000, SR)[: len(x)]


def lowpass(x: np.ndarray, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """x through a Butterworth low-pass at cutoff_hz."""
    return sosfilt(butter(order, cutoff_hz, fs=SR, output="sos"), x)


def trim_silence(x: np.ndarray, floor_db: float = -40.0, margin_s: float = 0.05) -> np.ndarray:
    """x without leading and trailing frames quieter than floor_db below its loudest frame."""
    hop = int(0.01 * SR)
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-20)
    active = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    margin = int(margin_s * SR)
    start = max(0, active[0] * hop - margin)
    stop = min(len(x), (active[-1] + 1) * hop + margin)
    return x[start:stop]


def fit_length(
    x: np.ndarray, rng: np.random.Generator, min_s: float = MIN_S, max_s: float = MAX_S
) -> np.ndarray:
    """x cropped (random window) to at most max_s, or zero-padded (random split) to min_s."""
    lo, hi = int(min_s * SR), int(max_s * SR)
    if len(x) > hi:
        start = int(rng.integers(0, len(x) - hi + 1))
        return x[start : start + hi]
    if len(x) < lo:
        before = int(rng.integers(0, lo - len(x) + 1))
        return np.pad(x, (before, lo - len(x) - before))
    return x


def peak_normalise(x: np.ndarray, peak_db: float) -> np.ndarray:
    """x scaled so that its absolute peak is peak_db dBFS; refuses (ValueError) silence."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if not np.isfinite(peak) or peak <= 0.0:
        raise ValueError("cannot normalise a silent or non-finite signal")
    return x * (10 ** (peak_db / 20) / peak)


def write_flac(path: Path, x: np.ndarray) -> float:
    """Write x as 16-bit 16 kHz mono FLAC at path (parents created); return its duration (s).

    Refuses (ValueError) a signal outside 1-4 s or with samples beyond full scale.
    """
    dur = len(x) / SR
    if not MIN_S <= dur <= MAX_S:
        raise ValueError(f"clip is {dur:.3f} s, outside {MIN_S}-{MAX_S} s")
    if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > 1.0:
        raise ValueError("clip has non-finite or clipping samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, format="FLAC", subtype="PCM_16")
    return dur
