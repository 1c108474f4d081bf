"""The progress bar `sigwh ingest` and `sigwh demo` show while a model explains its
clips (tqdm, on stderr): clips done, model queries per second, errors; and the other
libraries' warnings, held while it runs and said once each after it.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def warnings_held(say: Callable[[str], None]) -> Iterator[None]:
    """Hold the Python warnings raised in the block (a library's, such as transformers'
    "At least one mel filter has all zero values" when it builds a feature extractor),
    so that none lands inside a progress bar; when the block ends, even by an error,
    `say` gets each distinct one once, with the library it came from and how often."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every occurrence recorded: counted below
        try:
            yield
        finally:
            seen = Counter(
                (_source(w.filename), w.category.__name__, str(w.message)) for w in caught
            )
            for (source, category, message), n in seen.items():
                times = f", {n} times" if n > 1 else ""
                say(f"warning from {source} ({category}{times}): {message}")


def _source(filename: str) -> str:
    """The package a warning came from: the folder under site-packages, else the file."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1]
    return Path(filename).name
