"""Independent reference computations the tests check the engine against."""

from __future__ import annotations

import numpy as np
import torch


def fft_signal(wave: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """irfft(mask * rfft(wave)) in float64 with plain torch.fft, at the clip's own length
    (odd lengths included)."""
    spectrum = torch.fft.rfft(wave.double())
    return torch.fft.irfft(spectrum * torch.from_numpy(mask), n=wave.shape[0])
