"""The zoo's one non-transformers family, `cnn1d-wave`, and its checkpoint format.

The zoo's transformer families are Hugging Face checkpoints (`hfzoo.py`, kind "hf"); the
1-D CNN on the raw waveform has no transformers class, so it keeps this format (kind
"zoo"): an `nn.Module` mapping waveforms (batch, samples) at 16 kHz to logits.

The CNN can run its body in bfloat16 or float16 under autocast (models/precision.py);
the transformer families get SDPA attention where they load (hf.py).

A checkpoint is one safetensors file holding the weights, with the architecture, its
hyper-parameters, labels and sample rate as JSON metadata; a JSON sidecar (`<id>.json`)
repeats the description for torch-free readers (see `loader.model_labels`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from sigwarehouse.errors import SigwhError
from sigwarehouse.models.attention import attention_of
from sigwarehouse.models.base import AudioClassifier
from sigwarehouse.models.labels import label_matrix, resolve_label_map, sidecar_path

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


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn1d-wave": WaveCNN}


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
