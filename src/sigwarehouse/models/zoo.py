"""The project's own small classifiers: several architecture families, one checkpoint format.

Every zoo network is an `nn.Module` mapping waveforms (batch, samples) at 16 kHz to
logits, its feature extraction included (through `features.py`, the same code the
Hugging Face adapter uses), so training, evaluation and the adapter share one path:

- `cnn1d-wave`     1-D CNN on the raw waveform
- `cnn2d-logmel`   2-D CNN on the Whisper log-mel spectrogram (clip length kept)
- `w2v2-tiny`      Wav2Vec2 transformer (from a `Wav2Vec2Config`) on the normalised waveform
- `whisper-enc`    Whisper encoder (from a `WhisperConfig`) on a 4 s log-mel window
- `ast-tiny`       Audio Spectrogram Transformer (from an `ASTConfig`) on 4 s of Kaldi fbank

The transformer families are built with SDPA attention where transformers supports it
(models/attention.py), and every family can run its body in bfloat16 or float16 under
autocast (models/precision.py), its features staying float32.

A checkpoint is one safetensors file holding the weights, with the architecture, its
hyper-parameters, labels and sample rate as JSON metadata; a JSON sidecar (`<id>.json`)
repeats the description for torch-free readers (see `loader.model_labels`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import features
from sigwarehouse.models.attention import attention_of, build_with_sdpa
from sigwarehouse.models.base import AudioClassifier
from sigwarehouse.models.loader import label_matrix, resolve_label_map, sidecar_path

FORMAT = "sigwh-zoo/1"


class WaveCNN(nn.Module):
    """1-D CNN on the raw waveform: a wide strided first layer, then conv/pool blocks."""

    def __init__(self, n_labels: int, width: int = 16, first_kernel: int = 80):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            k, s = (first_kernel, 4) if i == 0 else (3, 1)
            layers += [
                nn.Conv1d(chans[i], chans[i + 1], k, stride=s, padding=k // 2),
                nn.BatchNorm1d(chans[i + 1]),
                nn.ReLU(),
            ]
            if i < 3:
                layers.append(nn.MaxPool1d(4))
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * chans[-1], n_labels))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        h = self.body(waves.unsqueeze(1))
        # mean and max over time: loudness and peak evidence both survive pooling
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))


class MelCNN(nn.Module):
    """2-D CNN on the Whisper log-mel of the whole clip (no 30 s padding)."""

    def __init__(self, n_labels: int, width: int = 16, n_mels: int = 64):
        super().__init__()
        self.n_mels = n_mels
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(),
                nn.MaxPool2d(2) if i < 3 else nn.Identity(),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(chans[-1], n_labels))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        mel = features.whisper_log_mel(waves, n_mels=self.n_mels, n_samples=None)
        h = self.body(mel.unsqueeze(1))
        return self.head(h.mean(dim=(-2, -1)))


class Wav2Vec2Net(nn.Module):
    """`Wav2Vec2ForSequenceClassification` built from a small config, on normalised waves."""

    def __init__(self, n_labels: int, **config: Any):
        super().__init__()
        from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

        cfg = Wav2Vec2Config(num_labels=n_labels, **config)
        self.net = build_with_sdpa(Wav2Vec2ForSequenceClassification, cfg)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.net(input_values=features.wav2vec2_normalize(waves)).logits


class WhisperEncNet(nn.Module):
    """`WhisperForAudioClassification` (encoder only) on a log-mel window of fixed length."""

    def __init__(self, n_labels: int, **config: Any):
        super().__init__()
        from transformers import WhisperConfig, WhisperForAudioClassification

        cfg = WhisperConfig(num_labels=n_labels, **config)
        self.n_mels = cfg.num_mel_bins
        # the encoder insists on exactly 2 * max_source_positions frames of 10 ms
        self.n_samples = 2 * cfg.max_source_positions * 160
        self.net = build_with_sdpa(WhisperForAudioClassification, cfg)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        mel = features.whisper_log_mel(waves, n_mels=self.n_mels, n_samples=self.n_samples)
        return self.net(input_features=mel).logits


class ASTNet(nn.Module):
    """`ASTForAudioClassification` on Kaldi fbank padded/truncated to `max_length` frames."""

    def __init__(self, n_labels: int, **config: Any):
        super().__init__()
        from transformers import ASTConfig, ASTForAudioClassification

        cfg = ASTConfig(num_labels=n_labels, **config)
        self.n_mels, self.max_length = cfg.num_mel_bins, cfg.max_length
        self.net = build_with_sdpa(ASTForAudioClassification, cfg)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        fbank = features.ast_fbank(waves, num_mel_bins=self.n_mels, max_length=self.max_length)
        return self.net(input_values=fbank).logits


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "cnn1d-wave": WaveCNN,
    "cnn2d-logmel": MelCNN,
    "w2v2-tiny": Wav2Vec2Net,
    "whisper-enc": WhisperEncNet,
    "ast-tiny": ASTNet,
}


def build_model(arch: str, n_labels: int, hparams: dict[str, Any]) -> nn.Module:
    """Return a freshly initialised network of family `arch`; raises SigwhError if unknown."""
    if arch not in ARCHITECTURES:
        raise SigwhError(f"unknown zoo architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](n_labels, **hparams)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights + `meta` (arch, hparams, labels, sample_rate, ...) and the JSON sidecar.

    Returns the checkpoint path. `meta` must be JSON-serialisable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for key in ("arch", "hparams", "labels", "sample_rate"):
        if key not in meta:
            raise ValueError(f"checkpoint metadata lacks {key!r}")
    meta = {"format": FORMAT, **meta}
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"sigwh": json.dumps(meta)})
    sidecar_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Return (network in eval mode on `device`, metadata) from a zoo checkpoint.

    Needs nothing but the file. Raises SigwhError for a missing or foreign file.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise SigwhError(f"zoo checkpoint {path} not found (train it with `sigwh zoo train`)")
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("sigwh")
    if raw is None:
        raise SigwhError(f"{path} is not a sigwarehouse zoo checkpoint (no 'sigwh' metadata)")
    meta = json.loads(raw)
    model = build_model(meta["arch"], len(meta["labels"]), meta["hparams"])
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval(), meta


class ZooClassifier(AudioClassifier):
    """A zoo checkpoint behind the `AudioClassifier` interface; probabilities in task order."""

    def __init__(
        self,
        checkpoint: str | Path,
        task_labels: list[str],
        label_map: dict[str, str] | None = None,
        device: str | torch.device = "cpu",
    ):
        """Load `checkpoint`; raises LabelMappingError if its labels don't map onto the task."""
        model, meta = load_checkpoint(checkpoint, device)
        super().__init__(task_labels, meta["sample_rate"], device)
        self.model, self.meta = model, meta
        self.attention = attention_of(model)
        self.model_labels = list(meta["labels"])
        index = resolve_label_map(self.model_labels, self.labels, label_map)
        self._to_task = label_matrix(index, self.n_labels, self.device)

    supports_low_precision = True

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        with self.autocast():  # the network only: softmax and label mapping in float32
            logits = self.model(waves.float())
        return logits.float().softmax(dim=-1) @ self._to_task
