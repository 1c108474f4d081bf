"""What every job does around its own work: a recorded run, the chunks it computes and
stores one at a time, and its models, timed (see `sigwarehouse.jobs`).

A job module supplies a plan (plans.py) and a function that carries it out inside
`job_run`, which records the run's row and how it ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sigwarehouse import store
from sigwarehouse.jobs.plans import S
from sigwarehouse.models.counting import timed
from sigwarehouse.models.loader import load_models
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    from sigwarehouse.models.base import AudioClassifier
    from sigwarehouse.records import ModelRecord

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`: a job's batches, each computed
    with the warehouse closed and stored in one transaction."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class JobRun(Generic[S]):
    """A started run: the batches a job writes go through it, tagged with its run id."""

    path: Path
    run_id: str
    counters: write_path.RunCounters
    summary: S
    started: float

    def clock(self) -> None:
        """Count the seconds since the run started into its counters."""
        self.counters.total_seconds = time.perf_counter() - self.started

    def write(self, tables: list[write_path.Rows], errors: list[dict] | None = None) -> None:
        """Store one batch and the counters in one transaction (write_path.write_batch)."""
        write_path.write_batch(self.path, tables, self.run_id, self.counters, errors)


@contextmanager
def job_run(
    path: Path,
    summary: Callable[[str], S],
    counters: write_path.RunCounters,
    **start: Any,
) -> Iterator[JobRun[S]]:
    """Open a `runs` row (`start` are write_path.start_run's keywords), make the job's summary
    from its run id, and record how the body ended (write_path.recorded: `done`, `interrupted`
    or `failed`, re-raising what the body raised)."""
    with store.opened(path) as con:
        run_id = write_path.start_run(con, **start)
    run = JobRun(path, run_id, counters, summary(run_id), time.perf_counter())
    with write_path.recorded(path, run_id, counters, run.summary, run.started):
        yield run


def timed_models(
    records: list[ModelRecord], labels: list[str], device: str, counters: write_path.RunCounters
) -> dict[str, AudioClassifier]:
    """The records' models on the device, counting their queries and forward-pass seconds
    into `counters`. Loaded before the run starts: a model that cannot load fails the job
    without a run row."""
    loaded = load_models(records, labels, device)
    return {name: timed(clf, counters) for name, clf in loaded.items()}
