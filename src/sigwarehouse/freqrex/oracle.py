"""The batched oracle: "probabilities of clip i with mask m" for many (i, m) at once.

The search describes each phase's mutants compactly (`MaskRequests`: a prefix of a
ranking, a base mask, kept or dropped intervals, optionally the complement), and the
oracle materialises the masks chunk by chunk on the model's device, multiplies them
into the clips' spectra, inverts (irfft / istft) and runs the model, `batch_size`
mutants per forward pass, mixing clips freely. Nothing per mutant goes through numpy:
the only host transfers are the compact descriptions (once per phase) and the
probabilities (once per phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sigwarehouse.freqrex.spectral import FFTSpace, STFTSpace, intervals_to_mask
from sigwarehouse.models.base import AudioClassifier


@dataclass
class Intervals:
    """Per-request unions of [start, end) intervals in CSR form (numpy, int64)."""

    row_ptr: np.ndarray  # (N + 1,): request r owns intervals row_ptr[r]:row_ptr[r+1]
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def from_lists(cls, per_request: list[list[tuple[int, int]]]) -> Intervals:
        counts = np.fromiter((len(x) for x in per_request), dtype=np.int64)
        row_ptr = np.concatenate(([0], np.cumsum(counts)))
        flat = [iv for x in per_request for iv in x]
        arr = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
        return cls(row_ptr, arr[:, 0].copy(), arr[:, 1].copy())


class _DeviceIntervals:
    """`Intervals` copied to the device once, sliced per chunk without host traffic."""

    def __init__(self, iv: Intervals, device: torch.device):
        self.row_ptr = iv.row_ptr
        counts = np.diff(iv.row_ptr)
        rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.rows = torch.as_tensor(rows, device=device)
        self.starts = torch.as_tensor(iv.starts, device=device)
        self.ends = torch.as_tensor(iv.ends, device=device)

    def mask(self, lo: int, hi: int, n_vars: int) -> torch.Tensor:
        a, b = int(self.row_ptr[lo]), int(self.row_ptr[hi])
        return intervals_to_mask(
            hi - lo, n_vars, self.rows[a:b] - lo, self.starts[a:b], self.ends[a:b]
        )


class MaskRequests:
    """A phase's mutants: per request r, with c = clip[r],

    mask = (rank[c] < sizes[r] if sizes) | (base[b] if base) | keep intervals
           minus drop intervals; then the complement where invert[r],
    where b = base_row[r] if given, else c. `rank` is (n_clips, n_vars) and `base`
    (any rows, n_vars), both already on the device.
    """

    def __init__(
        self,
        clip: np.ndarray,
        device: torch.device,
        *,
        rank: torch.Tensor | None = None,
        sizes: np.ndarray | None = None,
        base: torch.Tensor | None = None,
        base_row: np.ndarray | None = None,
        keep: Intervals | None = None,
        drop: Intervals | None = None,
        invert: np.ndarray | None = None,
    ):
        self.clip = np.asarray(clip, dtype=np.int64)
        self.n = len(self.clip)
        self.device = device
        self.clip_t = torch.as_tensor(self.clip, device=device)
        if (rank is None) != (sizes is None):
            raise ValueError("rank and sizes go together")
        self.rank = rank
        self.sizes = None if sizes is None else torch.as_tensor(sizes, device=device)
        self.base = base
        self.base_row = self.clip_t
        if base_row is not None:
            self.base_row = torch.as_tensor(np.asarray(base_row, dtype=np.int64), device=device)
        self.keep = None if keep is None else _DeviceIntervals(keep, device)
        self.drop = None if drop is None else _DeviceIntervals(drop, device)
        self.invert = None
        if invert is not None and np.any(invert):
            self.invert = torch.as_tensor(np.asarray(invert, dtype=bool), device=device)

    def build(self, lo: int, hi: int, n_vars: int) -> torch.Tensor:
        """Bool masks (hi - lo, n_vars) on the device for requests lo..hi."""
        clips = self.clip_t[lo:hi]
        mask = torch.zeros((hi - lo, n_vars), dtype=torch.bool, device=self.device)
        if self.rank is not None:
            mask |= self.rank[clips] < self.sizes[lo:hi, None]
        if self.base is not None:
            mask |= self.base[self.base_row[lo:hi]]
        if self.keep is not None:
            mask |= self.keep.mask(lo, hi, n_vars)
        if self.drop is not None:
            mask &= ~self.drop.mask(lo, hi, n_vars)
        if self.invert is not None:
            mask ^= self.invert[lo:hi, None]
        return mask


class Oracle:
    """Counts and answers model queries on masked signals of equal-length clips.

    `waves` (n_clips, n_samples) are moved to the classifier's device once; their
    coefficients in `space` stay there. `queries[i]` counts the model evaluations spent
    on clip i, and `by_phase[name]` the same per phase.
    """

    def __init__(
        self,
        classifier: AudioClassifier,
        waves: torch.Tensor,
        space: FFTSpace | STFTSpace,
        batch_size: int = 64,
    ):
        self.classifier = classifier
        self.device = classifier.device
        self.space = space
        self.batch_size = int(batch_size)
        self.waves = waves.to(self.device, torch.float32)
        self.n_clips = self.waves.shape[0]
        with torch.inference_mode():
            self.coeffs = space.forward(self.waves)
        self.queries = np.zeros(self.n_clips, dtype=np.int64)
        self.by_phase: dict[str, np.ndarray] = {}

    def _count(self, clip: np.ndarray, phase: str) -> None:
        counts = np.bincount(clip, minlength=self.n_clips)
        self.queries += counts
        self.by_phase.setdefault(phase, np.zeros(self.n_clips, dtype=np.int64))
        self.by_phase[phase] += counts

    @torch.inference_mode()
    def originals(self) -> torch.Tensor:
        """Probabilities (n_clips, n_labels) of the unmasked clips, on the host."""
        out = [
            self.classifier(self.waves[i : i + self.batch_size])
            for i in range(0, self.n_clips, self.batch_size)
        ]
        self._count(np.arange(self.n_clips), "original")
        return torch.cat(out).float().cpu()

    @torch.inference_mode()
    def run(self, requests: MaskRequests, phase: str) -> torch.Tensor:
        """Probabilities (n_requests, n_labels) of the requested mutants, on the host.

        Mutants of all clips are packed into batches of `batch_size`; masks, spectra
        products, inverse transforms and the model all run on the device, and the
        device is synchronised once, when the probabilities come back.
        """
        n = requests.n
        if n == 0:
            return torch.zeros((0, self.classifier.n_labels))
        out = torch.empty((n, self.classifier.n_labels), device=self.device)
        n_vars = self.space.n_vars
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            mask = requests.build(lo, hi, n_vars)
            coeffs = self.coeffs[requests.clip_t[lo:hi]] * mask
            out[lo:hi] = self.classifier(self.space.inverse(coeffs))
        self._count(requests.clip, phase)
        return out.float().cpu()
