"""The one factory that builds a classifier for a catalog entry, and the models of a job.

`load_classifier(kind, ref, task_labels)` builds an `AudioClassifier` for the zoo's CNN
checkpoint (kind "zoo"), a Hugging Face audio classifier (kind "hf", the zoo's
transformer families included) or the object a factory `package.module:factory`
returns (kind "python", see models/python.py);
`load_models` builds every model a job needs, from what `models.trust` lets it run.
Each adapter is imported in its own branch, so that choosing one costs only its imports
(torch; transformers for hf) and the CLI starts without them. The labels the adapters
and the catalog share are in models/labels.py, below all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import trust
from sigwarehouse.models.factory import PythonModelError
from sigwarehouse.models.labels import KINDS

if TYPE_CHECKING:
    from sigwarehouse.models.base import AudioClassifier
    from sigwarehouse.records import ModelRecord


def load_classifier(
    kind: str,
    ref: str | Path,
    task_labels: list[str],
    label_map: dict[str, str] | None = None,
    device: str = "cpu",
    allow_download: bool = False,
    name: str | None = None,
) -> AudioClassifier:
    """Build the classifier for a catalog entry, giving probabilities in task label order.

    kind "zoo": `ref` is a CNN checkpoint file (data/zoo/<task>/<id>.safetensors); kind
    "hf": a local directory (the zoo's transformers are data/zoo/<task>/<id>/) or a hub
    id, loaded with local_files_only unless `allow_download`; kind "python":
    `package.module:factory`, probed once on a short batch (models/python.py). `name`
    (the model id) goes into a python model's errors. Raises SigwhError for an unknown
    kind or missing files, PythonModelError for a factory that cannot be used,
    LabelMappingError for labels that do not map.
    """
    # Each branch imports its adapter (torch, and transformers for hf): only the one chosen
    if kind == "zoo":
        from sigwarehouse.models.zoo import ZooClassifier  # torch: only this branch

        return ZooClassifier(ref, task_labels, label_map=label_map, device=device)
    if kind == "hf":
        from sigwarehouse.models.hf import HFAudioClassifier  # torch, transformers

        return HFAudioClassifier(
            str(ref), task_labels, label_map=label_map, device=device, allow_download=allow_download
        )
    if kind == "python":
        from sigwarehouse.models.python import PythonClassifier  # torch: only this branch

        return PythonClassifier(str(ref), task_labels, label_map, device=device, name=name)
    raise SigwhError(f"unknown model kind {kind!r}; expected one of {KINDS}")


def load_models(
    records: list[ModelRecord],
    task_labels: list[str],
    device: str,
    source: trust.ModelSource | None = None,
) -> dict[str, AudioClassifier]:
    """Every model of the task on the device; a model that cannot load stops the job here.

    What is loaded for each record is decided by `models.trust.resolve` (the local
    catalog, or `source`: a trust.ModelSource), not by the kind and ref the warehouse
    stores.
    """
    loaded = {}
    for r in trust.resolve(records, source):
        try:
            loaded[r.model] = load_classifier(
                r.kind, r.ref, task_labels, label_map=r.label_map, device=device, name=r.model
            )
        except PythonModelError:
            raise  # names the model and the fix already
        except Exception as exc:
            raise SigwhError(
                f"model {r.model} ({r.kind} {r.ref}) could not be loaded: {exc}. Fix its entry "
                "in ingest/models/*.toml (ref, labels) and run `sigwh catalog sync`"
            ) from exc
    return loaded
