"""Which device a job runs on when the user does not say, and what suits it.

The library decides, not the command line, so `sigwh ingest`, `sigwh demo` and a
direct `run_ingest` call make the same choice.
"""

from __future__ import annotations

GPU_CLIPS_PER_BATCH = 32  # more clips fill the GPU's batches of mutants better
CPU_CLIPS_PER_BATCH = 8


def default_device(device: str | None = None) -> str:
    """`device` when given, else cuda when torch sees a GPU, else cpu."""
    if device:
        return device
    import torch  # only when asked: the CLI must start without torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def clips_per_batch(device: str) -> int:
    """Clips an ingest batch explains together and stores in one transaction."""
    return GPU_CLIPS_PER_BATCH if device.startswith("cuda") else CPU_CLIPS_PER_BATCH
