"""The runtime choices of an ingest run, made once its models are loaded: the precision
the explained model searches in and the batch size that fits the device, recorded with
the run's parameters (outside the parameter hash: results do not depend on them).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from sigwarehouse.jobs.ingest.plan import IngestPlan
from sigwarehouse.models import batching, precision

if TYPE_CHECKING:
    import duckdb

    from sigwarehouse.models.base import AudioClassifier


def longest_clip(con: duckdb.DuckDBPyConnection, clip_ids: list[int]) -> int | None:
    """The most samples of the plan's clips (what a batch size must fit), None if none."""
    if not clip_ids:
        return None
    return con.execute(
        "SELECT max(n_samples) FROM clips WHERE clip_id IN (SELECT unnest(?::INTEGER[]))",
        [list(clip_ids)],
    ).fetchone()[0]


def runtime_choices(
    plan: IngestPlan,
    models: dict[str, AudioClassifier],
    device: str,
    auto_batch: bool,
    longest: int | None,
) -> tuple[IngestPlan, dict]:
    """The plan with its precision and batch size resolved, and the run's record of the
    runtime choices: each model's dtype and attention kernel, how the batch was sized.

    Only the explained model runs in lower precision, and only for its search: the other
    models' answers are all stored probabilities, which are float32 (see batch.explain_rows).
    """
    explainer = models[plan.model]
    wanted = precision.resolve(plan.params.dtype, device)
    used = precision.name_of(explainer.use_dtype(precision.DTYPES[wanted]))
    batch_size, sized = plan.params.batch_size, "given"
    if auto_batch and longest:
        with torch.inference_mode():
            # the model itself, not its query-counting wrapper: probes are not queries
            inner = getattr(explainer, "inner", explainer)
            batch_size, sized = batching.auto_batch_size(inner, longest, batch_size)
    params = replace(plan.params, dtype=used, batch_size=batch_size)
    runtime = {
        "dtype_asked": wanted,
        "batch_size": sized,
        "models": {
            name: {"dtype": precision.name_of(m.dtype), "attention": m.attention}
            for name, m in models.items()
        },
    }
    return replace(plan, params=params), runtime
