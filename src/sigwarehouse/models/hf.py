"""Hugging Face audio classifiers behind the project's `AudioClassifier` interface.

An `AutoModelForAudioClassification` checkpoint (a local directory, or a hub id already
in the local cache) is paired with the torch version of its feature extractor from
`features.py`, so a batch of waveforms goes from the device to probabilities without
touching numpy. Nothing is downloaded unless the caller says so. The model is loaded
with SDPA attention where transformers supports it (models/attention.py) and can run
in bfloat16 or float16 under autocast (models/precision.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import features
from sigwarehouse.models.attention import attention_of, load_with_sdpa
from sigwarehouse.models.base import AudioClassifier
from sigwarehouse.models.labels import label_matrix, resolve_label_map

FeatureFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def feature_fn(extractor) -> FeatureFn:
    """Return a function waves (batch, samples) -> the model's keyword inputs, in torch.

    Reads the parameters of a Hugging Face feature extractor (Wav2Vec2, Whisper or AST
    family) and reproduces it with `features.py`. Raises SigwhError for other extractors.
    """
    name = type(extractor).__name__
    if name == "Wav2Vec2FeatureExtractor":  # wav2vec2, HuBERT, DistilHuBERT, WavLM
        normalize = bool(getattr(extractor, "do_normalize", True))
        return lambda w: {"input_values": features.wav2vec2_normalize(w) if normalize else w}
    if name == "WhisperFeatureExtractor":
        kwargs = dict(
            sample_rate=extractor.sampling_rate,
            n_mels=extractor.feature_size,
            n_fft=extractor.n_fft,
            hop_length=extractor.hop_length,
            n_samples=extractor.n_samples,
        )
        return lambda w: {"input_features": features.whisper_log_mel(w, **kwargs)}
    if name == "ASTFeatureExtractor":
        kwargs = dict(
            sample_rate=extractor.sampling_rate,
            num_mel_bins=extractor.num_mel_bins,
            max_length=extractor.max_length,
            normalize=extractor.do_normalize,
            mean=extractor.mean,
            std=extractor.std,
        )
        return lambda w: {"input_values": features.ast_fbank(w, **kwargs)}
    raise SigwhError(
        f"feature extractor {name} is not supported; supported: Wav2Vec2FeatureExtractor "
        "(wav2vec2/HuBERT/WavLM), WhisperFeatureExtractor, ASTFeatureExtractor"
    )


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards"): a job
    loads every model of its task, and the bars would bury its own progress on stderr."""
    from transformers.utils import logging as hf_logging  # transformers: only when hf loads

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class HFAudioClassifier(AudioClassifier):
    """`AutoModelForAudioClassification` + torch features; probabilities in task order."""

    def __init__(
        self,
        ref: str,
        task_labels: list[str],
        label_map: dict[str, str] | None = None,
        device: str | torch.device = "cpu",
        allow_download: bool = False,
    ):
        """Load model and feature extractor from `ref` (a directory or a hub id).

        Without `allow_download` only local files are used (local_files_only=True).
        Raises SigwhError when the files are not available locally, LabelMappingError when
        the model's id2label does not map onto `task_labels`.
        """
        # transformers: only when an hf model loads
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        local_only = not allow_download
        path = Path(ref).expanduser()
        ref = str(path) if path.is_dir() else ref
        # Never code from the model's folder, weights only as data (safetensors, or
        # torch.load with weights_only): a model folder is not trusted to run anything.
        safe = {"local_files_only": local_only, "trust_remote_code": False}
        try:
            with quiet_progress():
                extractor = AutoFeatureExtractor.from_pretrained(ref, **safe)
                model = load_with_sdpa(
                    AutoModelForAudioClassification.from_pretrained,
                    ref,
                    weights_only=True,
                    **safe,
                )
        except OSError as exc:
            hint = "" if allow_download else " (downloads are off: use a local directory)"
            raise SigwhError(f"hf model {ref!r} could not be loaded{hint}: {exc}") from exc
        super().__init__(task_labels, extractor.sampling_rate, device)
        self.ref = ref
        self.model = model.to(self.device).eval()
        self.model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        index = resolve_label_map(self.model_labels, self.labels, label_map)
        self._to_task = label_matrix(index, self.n_labels, self.device)
        self._features = feature_fn(extractor)
        self._dtype = next(model.parameters()).dtype
        self.attention = attention_of(model)

    supports_low_precision = True

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        # features in float32, outside autocast; the network under it (use_dtype)
        inputs = {k: v.to(self._dtype) for k, v in self._features(waves).items()}
        with self.autocast():
            logits = self.model(**inputs).logits
        return logits.float().softmax(dim=-1) @ self._to_task
