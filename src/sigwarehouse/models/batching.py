"""`--batch-size auto`: the most mutants per forward pass the device's free memory holds.

On a GPU the search is fastest with the largest batch that fits: fewer launches, fuller
tensor cores. The batch is found by measuring rather than guessing, since the memory a
mutant takes depends on the model, its precision, its attention kernel and the clip
length: probe passes of PROBE_BATCH mutants (the oracle's masking and inverse FFT
included, as a real batch) give the peak bytes per mutant, in the model's dtype and in
float32 (the job's float32 passes, a clip searched again in float32 included, use the
same batch size and take about twice the memory of a bfloat16 pass), and the larger
counts; the batch is the largest power of two whose predicted peak stays within
HEADROOM of the free memory, up to MAX_BATCH, and is then run once in float32 to
confirm (halved on an out-of-memory error).
On a CPU the default stays: a CPU gains nothing from batches past what fills its cores.
"""

from __future__ import annotations

import torch

from sigwarehouse.freqrex.spectral import FFTSpace
from sigwarehouse.models.base import AudioClassifier
from sigwarehouse.models.precision import float32_only

PROBE_BATCH = 8
HEADROOM = 0.7  # of the free memory: the caching allocator fragments, other tensors live
MAX_BATCH = 1024  # a search phase rarely has more mutants in flight than this


def _run_masked(classifier: AudioClassifier, batch: int, n_samples: int) -> None:
    """One batch as the oracle runs it: spectra masked, inverted, classified."""
    space = FFTSpace(n_samples)
    noise = torch.randn(batch, n_samples, device=classifier.device)
    mask = torch.rand(batch, space.n_vars, device=classifier.device) < 0.5
    classifier(space.inverse(space.forward(noise) * mask))


def _peak_bytes(classifier: AudioClassifier, batch: int, n_samples: int) -> int:
    """Peak device memory of one masked batch above what was allocated before it."""
    device = classifier.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    _run_masked(classifier, batch, n_samples)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def largest_fitting_batch(
    per_mutant: float, free: float, headroom: float = HEADROOM, cap: int = MAX_BATCH
) -> int:
    """The largest power of two n <= cap with n * per_mutant <= headroom * free (>= 1)."""
    fits = int(free * headroom / max(per_mutant, 1.0))
    batch = 1
    while batch * 2 <= min(fits, cap):
        batch *= 2
    return batch


def auto_batch_size(classifier: AudioClassifier, n_samples: int, default: int) -> tuple[int, str]:
    """(mutants per forward pass, how it was chosen) for clips of n_samples samples.

    CUDA: measured as the module doc says. Elsewhere: `default`, unchanged.
    """
    device = classifier.device
    if device.type != "cuda":
        return default, f"{default} (the default: auto sizing needs a CUDA device)"
    peak = _peak_bytes(classifier, PROBE_BATCH, n_samples)
    with float32_only():
        peak = max(peak, _peak_bytes(classifier, PROBE_BATCH, n_samples))
    per_mutant = max(peak / PROBE_BATCH, 1.0)
    free, _total = torch.cuda.mem_get_info(device)
    batch = largest_fitting_batch(per_mutant, free)
    while batch > 1:
        try:
            with float32_only():  # the hungrier of the job's two kinds of pass
                _run_masked(classifier, batch, n_samples)
            torch.cuda.synchronize(device)
            break
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch //= 2
    torch.cuda.empty_cache()
    how = (
        f"{batch} (auto: {per_mutant / 2**20:.1f} MiB per mutant of {n_samples} samples, "
        f"{free / 2**30:.1f} GiB free, cap {MAX_BATCH})"
    )
    return batch, how
