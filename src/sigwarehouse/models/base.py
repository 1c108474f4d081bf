"""The one interface every classifier adapter implements.

A classifier takes a batch of mono waveforms that are already on its device, at its
sample rate, shaped (batch, samples), and returns probabilities over the *task's*
labels, in task order, shaped (batch, n_labels). Everything above this interface
(the freqrex search, ingestion) is model-agnostic and never leaves the device.

A classifier whose network is torch may run it in lower precision (`use_dtype`, see
models/precision.py); its probabilities are float32 whatever the network ran in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from sigwarehouse.models import precision


class AudioClassifier(ABC):
    """Base class: holds the task's labels, the sample rate and the device."""

    # Whether the network can run under autocast (a torch network); others stay float32.
    supports_low_precision = False
    # Class-level defaults too, for subclasses that set up without calling __init__.
    dtype: torch.dtype = torch.float32
    attention: str | None = None

    def __init__(self, labels: list[str], sample_rate: int, device: str | torch.device = "cpu"):
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.device = torch.device(device)
        self.dtype = torch.float32  # the network body's compute dtype (see use_dtype)
        self.attention: str | None = None  # attention kernel, for transformer networks

    def use_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """Run the network in `dtype` from now on, where it can; returns the dtype it
        will actually run in (float32 for a model that cannot run lower)."""
        self.dtype = dtype if self.supports_low_precision else torch.float32
        return self.dtype

    def autocast(self):
        """The region an adapter runs its network body in (models/precision.py)."""
        return precision.autocast(self.device, self.dtype)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @abstractmethod
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Return probabilities (batch, n_labels) for waveforms (batch, samples) on self.device."""

    @torch.inference_mode()
    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.dim() != 2:
            raise ValueError(
                f"expected waveforms shaped (batch, samples), got {tuple(waves.shape)}"
            )
        return self.forward(waves)
