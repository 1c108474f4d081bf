"""A real tiny torch classifier that answers differently in lower precision, to drive
the engine's float32 safety net (tests/test_precision.py).

`HiddenOffset` hears two tones, 500 Hz and 3 kHz. In float32 it answers "both" only
when both tones are there; in bfloat16 or float16 it answers "both" as soon as the
500 Hz tone is there. Nothing in it asks which dtype it runs in: it carries the 3 kHz
evidence as a small offset on a large value through a linear layer (a
bias-dominated unit), 1 + x / 4096, which float32 keeps and a 16-bit float rounds to
1 (bfloat16 keeps 8 significant bits, float16 11), so the evidence vanishes under
autocast. A search in bfloat16 therefore finds a 500 Hz-only mask that the float32
model rejects.
"""

from __future__ import annotations

import torch
from torch import nn

from sigwarehouse.models.base import AudioClassifier

SAMPLE_RATE = 16000
N_SAMPLES = 8000  # 0.5 s: rfft bins 2 Hz apart, both tones on a bin
LOW_HZ, HIGH_HZ = 500.0, 3000.0
LOW_BIN, HIGH_BIN = int(LOW_HZ / 2), int(HIGH_HZ / 2)
LABELS = ["both", "other"]
OFFSET = 2.0**-12


def two_tones() -> torch.Tensor:
    """The clip the tests explain: both tones at amplitude 0.5, on exact bins."""
    t = torch.arange(N_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    wave = 0.5 * torch.sin(2 * torch.pi * LOW_HZ * t) + 0.5 * torch.sin(2 * torch.pi * HIGH_HZ * t)
    return wave.float()


class HiddenOffsetNet(nn.Module):
    """Waves (batch, samples) -> logits (batch, 2) over LABELS (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.carry = nn.Linear(1, 1)
        with torch.no_grad():
            self.carry.weight.fill_(OFFSET)
            self.carry.bias.fill_(1.0)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        # Tone amplitudes in float32 (features stay float32, as the package's do).
        with torch.autocast(device_type=waves.device.type, enabled=False):
            amp = torch.fft.rfft(waves.float()).abs() * (2.0 / waves.shape[-1])
            low = (amp[:, LOW_BIN - 50 : LOW_BIN + 50].amax(dim=1) / 0.25).clamp(max=1.0)
            high = (amp[:, HIGH_BIN - 50 : HIGH_BIN + 50].amax(dim=1) / 0.25).clamp(max=1.0)
        carried = self.carry((1.0 - high)[:, None])  # 1 + missing/4096, autocast's dtype
        missing = (carried.float()[:, 0] - 1.0) / OFFSET  # 1 - high in float32, 0 in 16 bits
        both = 20.0 * torch.minimum(low - 0.5, 0.5 - missing)
        return torch.stack([both, torch.zeros_like(both)], dim=1)


class HiddenOffset(AudioClassifier):
    """HiddenOffsetNet behind the AudioClassifier interface, its body under autocast as
    the zoo's and Hugging Face adapters run theirs."""

    supports_low_precision = True

    def __init__(self, device: str = "cpu"):
        super().__init__(LABELS, SAMPLE_RATE, device)
        self.net = HiddenOffsetNet().to(self.device).eval()

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            logits = self.net(waves)
        return logits.float().softmax(dim=-1)
