"""`kind = "python"` models behind the AudioClassifier interface (see models/factory.py
for what a factory returns and what is checked)."""

from __future__ import annotations

import numpy as np
import torch

from sigwarehouse.models.base import AudioClassifier
from sigwarehouse.models.factory import (
    DOCS,
    PythonModelError,
    build,
    check_probs,
    probe_waves,
    who_is,
)
from sigwarehouse.models.labels import label_matrix, resolve_label_map


class PythonClassifier(AudioClassifier):
    """A factory's object behind the AudioClassifier interface, in task label order."""

    def __init__(
        self,
        ref: str,
        task_labels: list[str],
        label_map: dict[str, str] | None = None,
        device: str | torch.device = "cpu",
        name: str | None = None,
    ):
        """Build the object (see `build`), map its labels onto `task_labels` and probe it.

        Raises PythonModelError (naming `name`, the model id, and the fix) for anything
        `build` or `check_probs` refuses on the probe batch, LabelMappingError for labels
        that do not map onto the task's.
        """
        self.obj = build(ref, name)
        super().__init__(task_labels, int(self.obj.sample_rate), device)
        self.ref = ref
        self.who = who_is(ref, name)
        self.model_labels = list(self.obj.labels)
        index = resolve_label_map(self.model_labels, self.labels, label_map)
        self._to_task = label_matrix(index, self.n_labels).numpy()
        self._probs(probe_waves(self.sample_rate))  # before any work: fail here, not later

    def _probs(self, waves: np.ndarray) -> np.ndarray:
        try:
            out = self.obj(waves)
        except Exception as exc:
            raise PythonModelError(
                f"{self.who}: calling it on waveforms shaped {waves.shape} raised "
                f"{type(exc).__name__}: {exc}; fix the factory's __call__ ({DOCS})"
            ) from exc
        return check_probs(out, waves.shape[0], self.model_labels, self.who)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        # a copy: the object may change its input, and the search's signals must not change
        x = waves.detach().to("cpu", torch.float32, copy=True).numpy()
        probs = self._probs(x) @ self._to_task
        return torch.from_numpy(probs).to(self.device)
