"""A small real classifier trained in seconds on synthetic tones, for tests and benches.

Four classes: "quiet" (faint noise), "low" (a tone in 250-600 Hz), "high" (a tone in
2-3.5 kHz) and "chord" (one of each). Features are the time-averaged log STFT magnitude,
then a two-layer MLP: a genuine (if tiny) spectral audio model, trained with a fixed seed
so every run gets the same weights. The empty signal looks like "quiet" to it, which
makes the empty-sufficient-set edge case reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sigwarehouse.models.base import AudioClassifier

LABELS = ["quiet", "low", "high", "chord"]
SAMPLE_RATE = 16000


def tone_clip(label: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic clip of class `label` (float32, n_samples at 16 kHz)."""
    t = np.arange(n_samples) / SAMPLE_RATE
    wave = rng.normal(0.0, 0.002, n_samples)
    if label in ("low", "chord"):
        wave += rng.uniform(0.3, 0.6) * np.sin(2 * np.pi * rng.uniform(250, 600) * t)
    if label in ("high", "chord"):
        wave += rng.uniform(0.3, 0.6) * np.sin(2 * np.pi * rng.uniform(2000, 3500) * t)
    if label != "quiet":
        wave += rng.normal(0.0, 0.02, n_samples)
    return wave.astype(np.float32)


def tone_set(n_per_class: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(waves (n, n_samples) float32, labels (n,) int64), classes interleaved."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for _ in range(n_per_class):
        for k, label in enumerate(LABELS):
            waves.append(tone_clip(label, n_samples, rng))
            labels.append(k)
    return np.stack(waves), np.asarray(labels, dtype=np.int64)


class _Net(nn.Module):
    def __init__(self, n_fft: int = 256):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft))
        self.mlp = nn.Sequential(nn.Linear(n_fft // 2 + 1, 32), nn.ReLU(), nn.Linear(32, 4))

    def features(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waves, self.n_fft, self.n_fft // 2, window=self.window, return_complex=True
        )
        return torch.log1p(100.0 * spec.abs()).mean(dim=-1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(waves))


class ToneClassifier(AudioClassifier):
    """AudioClassifier over LABELS backed by a trained `_Net`."""

    def __init__(self, net: _Net, device: str | torch.device = "cpu"):
        super().__init__(LABELS, SAMPLE_RATE, device)
        self.net = net.to(self.device).eval()

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(waves.float()), dim=-1)


def train_tone_classifier(
    n_samples: int = 8000, seed: int = 0, steps: int = 200, device: str = "cpu"
) -> ToneClassifier:
    """Train the tone model (well under a second); same seed, same weights."""
    torch.manual_seed(seed)
    waves, labels = tone_set(48, n_samples, seed)
    net = _Net()
    with torch.no_grad():  # the STFT front end has no weights: compute it once
        x = net.features(torch.from_numpy(waves))
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(net.mlp.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net.mlp(x), y)
        loss.backward()
        opt.step()
    return ToneClassifier(net, device)
