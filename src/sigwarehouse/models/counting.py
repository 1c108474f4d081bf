"""A classifier that counts its queries and forward-pass seconds into a run's counters.

Every job wraps the models it loads (jobs.skeleton.timed_models), so the `runs` row says
how many model queries the run made and how much of its time they took.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import torch

    from sigwarehouse.models.base import AudioClassifier


def timed(clf: AudioClassifier, counters: write_path.RunCounters) -> AudioClassifier:
    """The same classifier, counting its queries and forward-pass seconds into `counters`."""
    # models.base imports torch: the jobs' modules stay cheap to import for the CLI
    from sigwarehouse.models.base import AudioClassifier

    class Timed(AudioClassifier):
        def __init__(self) -> None:
            super().__init__(clf.labels, clf.sample_rate, clf.device)
            self.inner = clf
            self.dtype, self.attention = clf.dtype, clf.attention

        def use_dtype(self, dtype: torch.dtype) -> torch.dtype:
            self.dtype = self.inner.use_dtype(dtype)  # the inner forward applies it
            return self.dtype

        def forward(self, waves: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            out = self.inner.forward(waves)
            if out.device.type == "cuda":
                import torch  # torch is loaded by now; named here, not at the module's top

                torch.cuda.synchronize(out.device)
            counters.model_seconds += time.perf_counter() - start
            counters.queries += waves.shape[0]
            return out

    return Timed()
