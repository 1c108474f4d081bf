"""Which model code a job may run: decided on this machine, never by a warehouse file.

A warehouse stores each model's `kind` and `ref`, written by whoever built the file. A
shared file must not choose what runs here, so before a job loads a model:

- `zoo` checkpoints load as they are: a safetensors file of weights and JSON metadata,
  built into one of the fixed architectures in `models/zoo.py` (no code in the file);
- every other kind (an `hf` directory or hub id: the classes, feature extractor and
  weights it names; a `python` factory `package.module:factory`, which is code and runs
  when imported) loads from the entry of the same id in the catalog on this machine
  ($SIGWH_CATALOG or ./ingest), never from the ref the file stores; a model the local
  catalog does not list is refused, unless the user passes `--trust-warehouse-models`.

Whatever the source, Hugging Face loading never runs code from a model folder
(`trust_remote_code=False`) and reads weights only through safetensors or
`torch.load(weights_only=True)` (see models/hf.py).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse.errors import SigwhError

if TYPE_CHECKING:
    from sigwarehouse.records import ModelRecord

SAFE_KINDS = ("zoo",)


@dataclass(frozen=True)
class ModelSource:
    """Where a job takes a model's code and files from."""

    catalog_dir: Path | None = None  # None: $SIGWH_CATALOG, else ./ingest
    trust_warehouse: bool = False  # load the kind/ref the warehouse stores, as they are

    def catalog(self) -> Path:
        return self.catalog_dir or Path(os.environ.get("SIGWH_CATALOG", "ingest"))


_source = ModelSource()


def set_source(source: ModelSource) -> None:
    """Set the process's policy (the CLI does, from --trust-warehouse-models)."""
    global _source
    _source = source


def current() -> ModelSource:
    return _source


def resolve(records: list[ModelRecord], source: ModelSource | None = None) -> list[ModelRecord]:
    """The records with kind, ref and label map taken from where they may come from.

    zoo records are returned as stored; any other record is replaced by the local
    catalog's entry of the same id (or kept as stored with trust_warehouse). Raises
    SigwhError naming the model, and what to do, when the local catalog does not list it
    (or lists it for another task).
    """
    source = source or _source
    if source.trust_warehouse or all(r.kind in SAFE_KINDS for r in records):
        return list(records)
    # catalog imports sqlmodel and pydantic (half a second): not at CLI start-up, where
    # cli.common sets the source
    from sigwarehouse import catalog

    directory = source.catalog()
    risky = [r for r in records if r.kind not in SAFE_KINDS]
    try:
        local = catalog.load(directory).models
    except SigwhError as exc:
        raise SigwhError(
            f"{_which(risky)} ({risky[0].kind}) load only from the catalog on this machine, "
            f"and {directory} cannot be read: {exc}. Set SIGWH_CATALOG to your catalog folder, "
            "or pass `sigwh --trust-warehouse-models` if you trust the warehouse's author"
        ) from exc
    out = []
    for r in records:
        if r.kind in SAFE_KINDS:
            out.append(r)
            continue
        entry = local.get(r.model)
        if entry is None or entry.task != r.task:
            raise SigwhError(
                f"model {r.model} is a {r.kind} model whose ref ({r.ref}) comes from the "
                f"warehouse file, and the catalog on this machine ({directory}) does not list "
                f"it{'' if entry is None else f' for task {r.task}'}; models other than zoo "
                "checkpoints load only from your own catalog: add it to "
                f"{directory}/models/*.toml, or pass `sigwh --trust-warehouse-models` if you "
                "trust the warehouse's author"
            )
        out.append(
            dataclasses.replace(r, kind=entry.kind, ref=entry.ref, label_map=entry.label_map)
        )
    return out


def _which(records: list[ModelRecord]) -> str:
    names = ", ".join(r.model for r in records)
    return f"model{'s' if len(records) > 1 else ''} {names}"
