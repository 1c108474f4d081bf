"""The progress bar `sigwh ingest` and `sigwh demo` show while a model explains its
clips (tqdm, on stderr): clips done, model queries per second, errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from sigwarehouse.jobs.ingest.plan import IngestPlan
from sigwarehouse.store import write_path


@contextmanager
def progress_bar(plan: IngestPlan) -> Iterator[Callable[[int, write_path.RunCounters], None]]:
    """A progress bar (tqdm, on stderr) over the plan's clips, showing model queries per
    second and errors; yields the `progress` callback that run_ingest takes. What `sigwh
    ingest` and `sigwh demo` show while a model explains its clips."""
    bar = tqdm(
        total=len(plan.clip_ids), unit="clip", desc=f"ingest {plan.model}", dynamic_ncols=True
    )

    def progress(done: int, counters: write_path.RunCounters) -> None:
        bar.update(done)
        bar.set_postfix(queries_s=f"{queries_per_second(counters):.0f}", errors=counters.n_errors)

    try:
        yield progress
    finally:
        bar.close()


def queries_per_second(counters: write_path.RunCounters) -> float:
    return counters.queries / counters.total_seconds if counters.total_seconds else math.nan
