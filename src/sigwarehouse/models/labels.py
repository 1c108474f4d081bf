"""A model's labels, and how they map onto its task's: cheap, torch-free look-ups.

`model_labels(kind, ref)` and `resolve_label_map(...)` import neither torch nor
transformers for zoo and hf models, so `sigwh catalog sync` can validate label mappings
in milliseconds; for a python model, `model_labels` imports the factory's module and
calls the factory (the user's own code, from the local catalog), which costs what the
factory costs. `label_matrix` turns a resolved mapping into the matrix every adapter
multiplies its probabilities by.

Below the catalog, the adapters (zoo.py, hf.py, python.py) and the loader, which all use
it; it imports none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse.errors import SigwhError
from sigwarehouse.models.factory import build

if TYPE_CHECKING:
    import torch

KINDS = ("zoo", "hf", "python")


class LabelMappingError(SigwhError):
    """A model's labels cannot be mapped onto the task's labels."""


def resolve_label_map(
    model_labels: list[str],
    task_labels: list[str],
    label_map: dict[str, str] | None = None,
) -> list[int]:
    """Return, for each model label in model order, the index of its task label.

    A model label maps through `label_map` if it is a key there, else onto the task label
    of the same name, else onto the one task label equal to it ignoring case. Several
    model labels may share a task label (their probabilities are then summed). Raises
    LabelMappingError for a model label that maps nowhere, a `label_map` entry naming an
    unknown model or task label, or a task label no model label reaches.
    """
    label_map = dict(label_map or {})
    tasks = list(task_labels)
    lower = {t.lower(): t for t in tasks}
    for src, dst in label_map.items():
        if src not in model_labels:
            raise LabelMappingError(
                f"label_map key {src!r} is not a model label; the model's labels are {model_labels}"
            )
        if dst not in tasks:
            raise LabelMappingError(
                f"label_map sends {src!r} to {dst!r}, which is not a task label; "
                f"task labels are {tasks}"
            )
    index = []
    for label in model_labels:
        target = label_map.get(label) or (label if label in tasks else lower.get(label.lower()))
        if target is None:
            raise LabelMappingError(
                f"model label {label!r} matches no task label {tasks}; add it to the model's "
                f"label_map, e.g. label_map = {{ {json.dumps(label)} = "
                f'"<one of {", ".join(tasks)}>" }}'
            )
        index.append(tasks.index(target))
    missing = [t for i, t in enumerate(tasks) if i not in index]
    if missing:
        raise LabelMappingError(
            f"task label(s) {missing} get no model output (model labels: {model_labels}); "
            "map a model label onto each of them with label_map"
        )
    return index


def label_matrix(index: list[int], n_task: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Return the (n_model, n_task) 0/1 matrix that sums model probabilities into task order.

    `index` is `resolve_label_map`'s answer; `probs @ matrix` gives task probabilities.
    """
    import torch  # not at the top: model_labels must not import torch (catalog sync)

    mat = torch.zeros(len(index), n_task, device=device)
    mat[torch.arange(len(index)), torch.as_tensor(index)] = 1.0
    return mat


def sidecar_path(checkpoint: str | Path) -> Path:
    """The JSON file next to a zoo checkpoint that describes it (same name, .json)."""
    return Path(checkpoint).with_suffix(".json")


def _hf_config_path(ref: str) -> Path | None:
    """config.json of a local model directory, or of a hub id already in the local cache."""
    local = Path(ref).expanduser()
    if local.is_dir():
        path = local / "config.json"
        return path if path.is_file() else None
    # huggingface_hub imports much of what transformers does: only for a hub id
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def model_labels(kind: str, ref: str | Path) -> list[str]:
    """Return a model's output labels in its output order, without loading torch.

    zoo: read from the checkpoint's JSON sidecar; hf: from `config.json`'s id2label (a
    local directory, or a hub id already in the Hugging Face cache); python: the `labels`
    of the object the factory returns (this imports the module and calls the factory,
    which may import torch). Raises SigwhError for an unknown kind, when the file is
    missing (nothing is downloaded), or when the factory cannot be imported or called.
    """
    if kind == "zoo":
        side = sidecar_path(ref)
        if not side.is_file():
            raise SigwhError(f"zoo model {ref}: no sidecar {side} (retrain with `sigwh zoo train`)")
        return list(json.loads(side.read_text())["labels"])
    if kind == "hf":
        path = _hf_config_path(str(ref))
        if path is None:
            raise SigwhError(
                f"hf model {ref!r}: no config.json locally; point ref at a local directory "
                "or download the model into the Hugging Face cache first"
            )
        id2label = json.loads(path.read_text()).get("id2label")
        if not id2label:
            raise SigwhError(f"hf model {ref!r}: config.json has no id2label")
        return [id2label[k] for k in sorted(id2label, key=int)]
    if kind == "python":
        return list(build(str(ref)).labels)
    raise SigwhError(f"unknown model kind {kind!r}; expected one of {KINDS}")
