"""The one interface every classifier adapter implements.

A classifier takes a batch of mono waveforms that are already on its device, at its
sample rate, shaped (batch, samples), and returns probabilities over the *task's*
labels, in task order, shaped (batch, n_labels). Everything above this interface
(the freqrex search, ingestion) is model-agnostic and never leaves the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class AudioClassifier(ABC):
    """Base class: holds the task's labels, the sample rate and the device."""

    def __init__(self, labels: list[str], sample_rate: int, device: str | torch.device = "cpu"):
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.device = torch.device(device)

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
