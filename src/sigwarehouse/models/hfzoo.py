"""The zoo's transformer families, built and saved as Hugging Face checkpoints.

Each family is a transformers audio-classification class with a tiny config, paired with
the transformers feature extractor configured to produce exactly what the network is
trained on:

- `hubert-tiny`  `HubertForSequenceClassification` (DistilHuBERT-sized: 2 layers) on the
                 normalised waveform (`Wav2Vec2FeatureExtractor`)
- `w2v2-tiny`    `Wav2Vec2ForSequenceClassification` on the normalised waveform
- `whisper-enc`  `WhisperForAudioClassification` (encoder only) on a 4 s, 80-bin log-mel
                 window (`WhisperFeatureExtractor(chunk_length=4)`)
- `ast-tiny`     `ASTForAudioClassification` on 4 s of 128-bin Kaldi fbank
                 (`ASTFeatureExtractor(max_length=400)`)

A trained model is a `save_pretrained` directory (config.json with id2label/label2id,
model.safetensors, preprocessor_config.json) that `kind = "hf"` loads like any user's
checkpoint, plus `sigwh_zoo.json`: how it was trained and how it scored.

Training goes through the same torch feature path as inference (`hf.feature_fn` of the
saved extractor), so the network is trained on exactly the inputs it will be asked about.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sigwarehouse.errors import SigwhError
from sigwarehouse.models.attention import build_with_sdpa
from sigwarehouse.models.hf import feature_fn, quiet_progress

META_FILE = "sigwh_zoo.json"
WINDOW_S = 4  # Whisper and AST see a fixed window; the corpus clips are 1-3.9 s long


def _wave_extractor(sample_rate: int):
    # transformers: only when a zoo model is built
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sample_rate,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )


def _whisper_extractor(sample_rate: int, hparams: dict[str, Any]):
    from transformers import WhisperFeatureExtractor  # transformers: only when a zoo model is built

    return WhisperFeatureExtractor(
        feature_size=hparams["num_mel_bins"],
        sampling_rate=sample_rate,
        hop_length=160,
        chunk_length=WINDOW_S,
        n_fft=400,
    )


def _ast_extractor(sample_rate: int, hparams: dict[str, Any]):
    from transformers import ASTFeatureExtractor  # transformers: only when a zoo model is built

    return ASTFeatureExtractor(
        feature_size=1,
        sampling_rate=sample_rate,
        num_mel_bins=hparams["num_mel_bins"],
        max_length=hparams["max_length"],
        do_normalize=True,
    )


def _config_and_class(family: str, hparams: dict[str, Any], labels: list[str]):
    import transformers as tf  # transformers: only when a zoo model is built

    classes = {
        "hubert-tiny": (tf.HubertConfig, tf.HubertForSequenceClassification),
        "w2v2-tiny": (tf.Wav2Vec2Config, tf.Wav2Vec2ForSequenceClassification),
        "whisper-enc": (tf.WhisperConfig, tf.WhisperForAudioClassification),
        "ast-tiny": (tf.ASTConfig, tf.ASTForAudioClassification),
    }
    if family not in classes:
        raise SigwhError(f"unknown Hugging Face zoo family {family!r}; known: {sorted(classes)}")
    config_cls, model_cls = classes[family]
    config = config_cls(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **hparams,
    )
    if family == "whisper-enc" and 2 * config.max_source_positions * 160 != WINDOW_S * 16000:
        # the encoder refuses any other number of frames than 2 * max_source_positions
        raise SigwhError(f"whisper-enc: max_source_positions must be {WINDOW_S * 50}")
    return config, model_cls


FAMILIES = ("hubert-tiny", "w2v2-tiny", "whisper-enc", "ast-tiny")


def build(
    family: str, labels: list[str], hparams: dict[str, Any], sample_rate: int = 16000
) -> tuple[nn.Module, Any]:
    """A freshly initialised (model, feature extractor) of `family` for `labels`.

    The model uses PyTorch's scaled-dot-product attention. Raises SigwhError for an
    unknown family.
    """
    config, model_cls = _config_and_class(family, hparams, labels)
    model = build_with_sdpa(model_cls, config)
    if family in ("hubert-tiny", "w2v2-tiny"):
        extractor = _wave_extractor(sample_rate)
    elif family == "whisper-enc":
        extractor = _whisper_extractor(sample_rate, hparams)
    else:
        extractor = _ast_extractor(sample_rate, hparams)
    return model, extractor


class WaveformClassifier(nn.Module):
    """Waveforms (batch, samples) -> logits: the torch feature path, then the HF model.

    What training optimises; inference goes through `hf.HFAudioClassifier`, which builds
    the same feature path from the saved extractor.
    """

    def __init__(self, model: nn.Module, extractor: Any):
        super().__init__()
        self.model = model
        self.extractor = extractor
        self._features = feature_fn(extractor)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.model(**self._features(waves.float())).logits


def count_params(model: nn.Module) -> int:
    """Number of parameters, frozen ones included (Whisper's fixed sinusoidal positions
    are weights in the file too, and from_pretrained does not freeze them again)."""
    return sum(p.numel() for p in model.parameters())


def save(directory: str | Path, net: WaveformClassifier, meta: dict[str, Any]) -> Path:
    """Write `net` as a save_pretrained directory (model + extractor) and `meta` beside it.

    Returns the directory. `meta` must be JSON-serialisable and name the family, labels
    and sample rate.
    """
    for key in ("family", "labels", "sample_rate"):
        if key not in meta:
            raise ValueError(f"zoo metadata lacks {key!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with quiet_progress():
        net.model.save_pretrained(directory)
    net.extractor.save_pretrained(directory)
    write_meta(directory, meta)
    return directory


def write_meta(directory: str | Path, meta: dict[str, Any]) -> Path:
    """(Re)write the directory's sigwh_zoo.json; returns its path."""
    path = Path(directory) / META_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The sigwh_zoo.json of a zoo directory; SigwhError naming the fix if it is missing."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise SigwhError(f"{directory}: no {META_FILE} (retrain it with `sigwh zoo train`)")
    return json.loads(path.read_text())


def weight_bytes(directory: str | Path) -> int:
    """Size of the directory's model.safetensors in bytes."""
    return (Path(directory) / "model.safetensors").stat().st_size
