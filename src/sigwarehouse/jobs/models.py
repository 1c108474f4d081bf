"""What every model job shares: the task's models from the catalog, loaded and timed, and
batched evaluation of waveforms of any lengths on them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs import runs

if TYPE_CHECKING:
    import duckdb
    import torch

    from sigwarehouse.models.base import AudioClassifier


@dataclass(frozen=True)
class ModelRecord:
    model: str
    task: str
    kind: str
    ref: str
    labels: list[str]
    label_map: dict[str, str] | None


def model_record(con: duckdb.DuckDBPyConnection, model: str) -> ModelRecord:
    row = con.execute(
        "SELECT model, task, kind, ref, labels, label_map FROM models WHERE model = ?", [model]
    ).fetchone()
    if row is None:
        known = [m for (m,) in con.execute("SELECT model FROM models ORDER BY 1").fetchall()]
        raise SigwhError(
            f"unknown model {model!r}; known: {', '.join(known) or 'none'} "
            "(add it to ingest/models/*.toml and run `sigwh catalog sync`)"
        )
    label_map = json.loads(row[5]) if row[5] else None
    return ModelRecord(row[0], row[1], row[2], row[3], list(row[4]), label_map)


def task_models(con: duckdb.DuckDBPyConnection, task: str) -> list[ModelRecord]:
    names = con.execute("SELECT model FROM models WHERE task = ? ORDER BY model", [task]).fetchall()
    return [model_record(con, m) for (m,) in names]


def load_models(
    records: list[ModelRecord], task_labels: list[str], device: str, source=None
) -> dict[str, AudioClassifier]:
    """Every model of the task on the device; a model that cannot load stops the job here.

    What is loaded for each record is decided by `models.trust.resolve` (the local
    catalog, or `source`: a trust.ModelSource), not by the kind and ref the warehouse
    stores.
    """
    from sigwarehouse.models import trust
    from sigwarehouse.models.loader import load_classifier

    loaded = {}
    for r in trust.resolve(records, source):
        try:
            loaded[r.model] = load_classifier(
                r.kind, r.ref, task_labels, label_map=r.label_map, device=device
            )
        except Exception as exc:
            raise SigwhError(
                f"model {r.model} ({r.kind} {r.ref}) could not be loaded: {exc}. Fix its entry "
                "in ingest/models/*.toml (ref, labels) and run `sigwh catalog sync`"
            ) from exc
    return loaded


def entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of probabilities."""
    p = np.clip(probs.astype(np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def timed(clf: AudioClassifier, counters: runs.RunCounters) -> AudioClassifier:
    """The same classifier, counting its queries and forward-pass seconds into `counters`."""
    from sigwarehouse.models.base import AudioClassifier

    class Timed(AudioClassifier):
        def __init__(self) -> None:
            super().__init__(clf.labels, clf.sample_rate, clf.device)
            self.inner = clf

        def forward(self, waves: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            out = self.inner.forward(waves)
            if out.device.type == "cuda":
                import torch

                torch.cuda.synchronize(out.device)
            counters.model_seconds += time.perf_counter() - start
            counters.queries += waves.shape[0]
            return out

    return Timed()


def evaluate(clf: AudioClassifier, waves: list[torch.Tensor], batch_size: int) -> np.ndarray:
    """Probabilities (n, labels) of 1-D waves of any lengths: equal lengths share a batch."""
    import torch

    out = np.zeros((len(waves), clf.n_labels), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_length.setdefault(w.shape[-1], []).append(i)
    for idx in by_length.values():
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            probs = clf(torch.stack([waves[i] for i in part]))
            out[part] = probs.float().cpu().numpy()
    return out
