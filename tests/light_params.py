"""The light but real freqrex parameters of the tests that run `sigwh ingest` on zoo
models, as a FreqrexParams and as the same parameters on the command line: one short
responsibility tree, and 1-minimality certified bin by bin only up to 64 bins (a
sampled figure above), so a clip costs a few hundred queries."""

from sigwarehouse.freqrex.params import FreqrexParams

PARAMS = FreqrexParams(
    iterations=1, max_depth=4, min_band_bins=64, certify_rounds=3, per_bin_limit=64, batch_size=128
)
ARGS = [
    "--iterations", "1", "--param", "max_depth=4", "--param", "min_band_bins=64",
    "--param", "certify_rounds=3", "--param", "per_bin_limit=64",
]  # fmt: skip
