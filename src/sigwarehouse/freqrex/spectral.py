"""Variable spaces (rfft bins, or STFT cells), masks over them, and compact mask storage.

A *space* turns waveforms into complex coefficients and back, and says which coefficients
each causal variable holds: `FFTSpace` is the paper's (rfft bins of the whole clip, a
removed bin set to 0, signal = irfft(m * S)), one variable per bin or, on long clips,
per band of `variable_hz` Hz (`bins_per_variable`); `STFTSpace` is the time-frequency
option (one variable per STFT cell, flattened frequency-major so a contiguous index
range is a frequency band over a span of frames). Both run batched in torch on the
waveforms' device.

Masks are bool tensors/arrays over the variables. For storage, `pack_mask` packs one
into bytes (numpy packbits) and `mask_to_bands` lists its kept runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
import torch

from sigwarehouse.freqrex.renderings import float64_signals

if TYPE_CHECKING:
    from sigwarehouse.freqrex.params import FreqrexParams


class FFTSpace:
    """One variable per `bins_per_var` consecutive rfft bins of a clip of `n_samples`
    samples (1: one per bin, the paper's space; the last variable may hold fewer)."""

    kind = "fft"

    def __init__(self, n_samples: int, bins_per_var: int = 1):
        self.n_samples = int(n_samples)
        self.n_bins = self.n_samples // 2 + 1
        self.bins_per_var = int(bins_per_var)
        if self.bins_per_var < 1:
            raise ValueError(f"bins_per_var must be >= 1, got {bins_per_var}")
        self.n_vars = -(-self.n_bins // self.bins_per_var)
        self.shape = (self.n_vars,)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Complex coefficients (batch, n_bins) of real waveforms (batch, n_samples), in
        float64 for float64 waves, else in float32."""
        return torch.fft.rfft(_real(waves), dim=-1)

    def inverse(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Waveforms (batch, n_samples) from coefficients (batch, n_bins), in the
        coefficients' precision."""
        if coeffs.device.type == "cpu" and not coeffs.requires_grad:
            # scipy's pocketfft: 1.6x faster than torch's CPU FFT at lengths with a large
            # prime factor (most recorded clips' lengths: 40588 samples, 25 ms against 40
            # a signal in float64), the same at smooth lengths; the search's main cost
            # after the model's on such clips
            out = scipy.fft.irfft(coeffs.resolve_conj().numpy(), n=self.n_samples, axis=-1)
            return torch.from_numpy(out)
        return torch.fft.irfft(coeffs, n=self.n_samples, dim=-1)

    def expand(self, masks: torch.Tensor) -> torch.Tensor:
        """Masks over the variables (batch, n_vars) as masks over the bins (batch, n_bins)."""
        if self.bins_per_var == 1:
            return masks
        return masks.repeat_interleave(self.bins_per_var, dim=-1)[..., : self.n_bins]

    def to_bins(self, values: np.ndarray) -> np.ndarray:
        """A per-variable 1-D array (a mask, a map) as one value per bin."""
        if self.bins_per_var == 1:
            return values
        return np.repeat(values, self.bins_per_var)[: self.n_bins]

    def magnitude_order_key(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Per-variable magnitude (the root of its bins' summed power), the tie-break
        when responsibilities are equal."""
        power = coeffs.abs().square()
        pad = self.n_vars * self.bins_per_var - self.n_bins
        power = torch.nn.functional.pad(power, (0, pad))
        return power.reshape(*power.shape[:-1], self.n_vars, self.bins_per_var).sum(-1).sqrt()


def _real(waves: torch.Tensor) -> torch.Tensor:
    """Waveforms as float64 if they are, else as float32 (the search's precision)."""
    return waves if waves.dtype == torch.float64 else waves.float()


def bins_per_variable(n_samples: int, sample_rate: int, variable_hz: float) -> int:
    """How many rfft bins one variable of at most `variable_hz` Hz holds: bins lie
    sample_rate / n_samples Hz apart, so a clip of d seconds has d * variable_hz of them
    in that width (at least 1). The number of variables, about sample_rate / 2 /
    variable_hz, then no longer grows with the clip's length."""
    return max(1, math.floor(variable_hz * n_samples / sample_rate + 1e-9))


class STFTSpace:
    """One variable per STFT cell (Hann window), flattened frequency-major."""

    kind = "stft"

    def __init__(self, n_samples: int, n_fft: int, hop: int):
        if n_samples < n_fft:
            raise ValueError(f"clip of {n_samples} samples is shorter than n_fft={n_fft}")
        self.n_samples = int(n_samples)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.n_freq = self.n_fft // 2 + 1
        self.n_frames = 1 + self.n_samples // self.hop  # torch.stft with center=True
        self.n_vars = self.n_freq * self.n_frames
        self.n_bins = self.n_vars  # stored entries: one per cell, as the variables
        self.bins_per_var = 1
        self.shape = (self.n_freq, self.n_frames)
        self._window: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _win(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if (device, dtype) not in self._window:
            self._window[device, dtype] = torch.hann_window(self.n_fft, device=device, dtype=dtype)
        return self._window[device, dtype]

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        waves = _real(waves)
        spec = torch.stft(
            waves,
            self.n_fft,
            self.hop,
            window=self._win(waves.device, waves.dtype),
            center=True,
            return_complex=True,
        )
        return spec.reshape(spec.shape[0], -1)

    def inverse(self, coeffs: torch.Tensor) -> torch.Tensor:
        spec = coeffs.reshape(coeffs.shape[0], self.n_freq, self.n_frames)
        return torch.istft(
            spec,
            self.n_fft,
            self.hop,
            window=self._win(coeffs.device, coeffs.real.dtype),
            center=True,
            length=self.n_samples,
        )

    def expand(self, masks: torch.Tensor) -> torch.Tensor:
        return masks

    def to_bins(self, values: np.ndarray) -> np.ndarray:
        return values

    def magnitude_order_key(self, coeffs: torch.Tensor) -> torch.Tensor:
        return coeffs.abs()


def make_space(
    n_samples: int, params: FreqrexParams | None = None, sample_rate: int | None = None
) -> FFTSpace | STFTSpace:
    """The variable space that `params.space` names, for clips of n_samples samples.

    With a sample rate, "fft" variables are `params.variable_hz` wide (several bins each
    on clips longer than 1 / variable_hz seconds); without one, one per bin (the space
    stored masks and `signals_for` use)."""
    if params is None or params.space == "fft":
        if params is None or sample_rate is None:
            return FFTSpace(n_samples)
        return FFTSpace(n_samples, bins_per_variable(n_samples, sample_rate, params.variable_hz))
    return STFTSpace(n_samples, params.stft_n_fft, params.stft_hop)


def intervals_to_mask(
    n_rows: int,
    n_vars: int,
    rows: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor,
) -> torch.Tensor:
    """Bool masks (n_rows, n_vars), row r true on the union of its [start, end) intervals.

    All index tensors must be on one device; the result is on that device. Built with a
    difference array and a cumulative sum, so cost is linear in n_rows * n_vars and in the
    number of intervals, with no Python loop.
    """
    diff = torch.zeros((n_rows, n_vars + 1), dtype=torch.int32, device=rows.device)
    if rows.numel():
        ones = torch.ones_like(rows, dtype=torch.int32)
        diff.index_put_((rows, starts), ones, accumulate=True)
        diff.index_put_((rows, ends), -ones, accumulate=True)
    return diff.cumsum_(dim=1)[:, :n_vars] > 0


def signals_for(
    waves: torch.Tensor | list,
    masks: torch.Tensor | np.ndarray | list,
    params: FreqrexParams | None = None,
) -> torch.Tensor:
    """Waveforms (batch, samples) float32 of the masked signals: inverse(mask *
    forward(wave)), computed in float64 (renderings.float64_signals: the signal every
    stored probability is computed on, which NumPy's float64 FFT rebuilds).

    `waves` is a (batch, samples) tensor or a list of equal-length 1-D waves; `masks`
    is (batch, n_vars) bool (numpy or torch) in the space `params.space` names (rfft
    bins by default). Runs batched on the waves' device. Refuses shape mismatches.
    """
    if isinstance(waves, list):
        waves = torch.stack([torch.as_tensor(w) for w in waves])
    if waves.dim() != 2:
        raise ValueError(f"expected waves shaped (batch, samples), got {tuple(waves.shape)}")
    if isinstance(masks, list):
        masks = np.stack([np.asarray(m, dtype=bool) for m in masks])
    masks = torch.as_tensor(masks, device=waves.device).bool()
    space = make_space(waves.shape[1], params)
    if masks.shape != (waves.shape[0], space.n_vars):
        raise ValueError(
            f"masks shaped {tuple(masks.shape)} do not match {waves.shape[0]} clips "
            f"of {space.n_vars} variables"
        )
    return float64_signals(space, waves, masks)


def pack_mask(mask: np.ndarray) -> bytes:
    """A bool mask packed 8 variables per byte (numpy packbits, big bit order)."""
    return np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes()


def unpack_mask(data: bytes, n_vars: int) -> np.ndarray:
    """The bool mask of n_vars variables that `pack_mask` packed into `data`."""
    if len(data) != (n_vars + 7) // 8:
        raise ValueError(f"{len(data)} bytes do not pack {n_vars} variables")
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n_vars).astype(bool)


def mask_to_bands(mask: np.ndarray) -> list[tuple[int, int]]:
    """The kept runs of a 1-D mask as half-open [start, end) index pairs, ascending."""
    m = np.asarray(mask, dtype=bool).ravel()
    edges = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def bands_to_mask(bands: list[tuple[int, int]], n_vars: int) -> np.ndarray:
    """The 1-D bool mask of n_vars variables kept on the given [start, end) bands."""
    m = np.zeros(n_vars, dtype=bool)
    for start, end in bands:
        if not 0 <= start <= end <= n_vars:
            raise ValueError(f"band [{start}, {end}) outside 0..{n_vars}")
        m[start:end] = True
    return m
