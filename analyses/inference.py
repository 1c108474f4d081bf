"""The report's statistics, and the least number of clips at which it states them.

Clips are the independent units of a study: every model explains the same clips, so the
α cells of a matrix, a model's signals on several targets, and the sufficient and
complete signals of one clip all share their clips and are not independent of each
other. So every test and interval here takes one value per clip (a per-clip summary
computed by DuckDB, so the cost grows with clips, not with signal rows) and resamples,
permutes or pairs clips:

- a share over clips (accuracy, one α or β cell: one signal per clip) gets a Wilson
  interval (`scipy.stats.binomtest(...).proportion_ci`), valid at every n and at a share
  of 0 or 1, where a percentile bootstrap collapses to a point;
- a mean of per-clip values (a difference, a gap) gets a percentile bootstrap interval
  over clips (`scipy.stats.bootstrap`) and, where it is tested, a sign-flip permutation
  test over clips (`scipy.stats.permutation_test`, exact up to 13 clips);
- two groups of clips (spectral entropy by class) get a Mann–Whitney U test.

Below its minimum (MIN_CLIPS, the one place the report's thresholds live) a test gives
no statistic, p-value or interval, but the sentence `not_tested` writes, and its section
lists the reason, which the page repeats at its top as the reason its figures are
illustrative.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import special, stats

LEVEL = 0.95  # confidence of every interval
SIGNIFICANCE = 0.05  # `reject` of every test is p < SIGNIFICANCE
SEED = 20240601
N_RESAMPLES = 9999
BATCH_VALUES = 4_000_000  # values a batch of resamples holds (32 MB), whatever the clips
# Up to this many clips, means are resampled. Beyond, resampling n values 9999 times
# costs seconds per test (a sign-flip test of 20,000 clips: 11 s), and the resampling
# distributions of a mean are normal to well within the figures the page shows, so the
# one-sample t interval and t-test of the per-clip values (scipy.stats.ttest_1samp) take
# their place, in O(n).
RESAMPLE_UP_TO = 2000


def _batch(n: int) -> int:
    """Resamples per batch, so that memory stays small at any number of clips."""
    return max(1, min(N_RESAMPLES, BATCH_VALUES // max(n, 1)))


# The least number of clips at which each test is run. With fewer than 6 clips no
# sign-flip test can reach p < 0.05 (its smallest two-sided p is 2 / 2^n: 0.0625 at 5);
# at 8 it is 0.008, and the bootstrap has 6435 distinct resamples instead of the 126 of
# 5 clips. A Mann–Whitney test with 8 clips in each class can reach p = 0.0002 (0.1 with
# 3 and 3). 8 is the smallest round figure at which a test can say more than its floor.
MIN_CLIPS = {
    "paired difference": 8,  # sufficient vs complete: clips with both kinds
    "flat-earther gap": 8,  # clips of the group
    "Mann–Whitney": 8,  # clips of each class
}


def clips(n: int) -> str:
    """'1 clip', '5 clips'."""
    return f"{n} clip" if n == 1 else f"{n} clips"


def not_tested(test: str, n: int, unit: str = "") -> str | None:
    """'not tested: n = 2 clips (needs ≥ 8)' when n is below the test's minimum, else None.

    `unit` qualifies the count, e.g. ' of each class'."""
    need = MIN_CLIPS[test]
    if n >= need:
        return None
    return f"not tested: n = {clips(n)}{unit} (needs ≥ {need})"


def untested(label: str, test: str, ns: list[int], total: int, unit: str = "") -> str:
    """One group's reason its figures are illustrative: 'genre / genre-eval: 10 of 10
    tests not tested, n = 1 to 2 clips (needs ≥ 8)'."""
    low, high = min(ns), max(ns)
    n = clips(low) if low == high else f"{low} to {clips(high)}"
    tests = "test" if total == 1 else "tests"
    need = MIN_CLIPS[test]
    return f"{label}: {len(ns)} of {total} {tests} not tested, n = {n}{unit} (needs ≥ {need})"


def illustrative(section: str, reasons: list[str]) -> str:
    """The sentence that says why a section's figures are illustrative (for the page's top)."""
    shown = "; ".join(dict.fromkeys(reasons))
    return f"{section}: {shown}."


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of k successes in n clips ((nan, nan) when n is 0)."""
    lo, hi = wilson_bounds(np.array([k], np.float64), np.array([n], np.float64), level)
    return float(lo[0]), float(hi[0])


def wilson_bounds(
    k: np.ndarray, n: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score intervals (lo, hi) of k[i] successes in n[i] clips, all at once
    (NaN where n is 0 or either is NaN): Newcombe's (1998) form, as scipy's
    `binomtest(k, n).proportion_ci(method="wilson")` states it, lo 0 at k = 0 and hi 1 at
    k = n. One call per matrix instead of one binomtest per cell (1.4 ms each: seconds
    for a study's cells)."""
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    z = special.ndtri(0.5 + 0.5 * level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 2 * (n + z**2)
        center = (2 * n * p + z**2) / denom
        delta = z / denom * np.sqrt(4 * n * p * (1 - p) + z**2)
    valid = n > 0
    lo = np.where(valid, np.where(k == 0, 0.0, center - delta), np.nan)
    hi = np.where(valid, np.where(k == n, 1.0, center + delta), np.nan)
    return lo, hi


def with_wilson(frame: pl.DataFrame, k: str, n: str, level: float = LEVEL) -> pl.DataFrame:
    """The frame with columns lo and hi: the Wilson interval of column k's successes in
    column n's clips on each row (null where either is null)."""
    counts = frame.select(pl.col(k, n).cast(pl.Float64)).to_numpy()
    lo, hi = wilson_bounds(counts[:, 0], counts[:, 1], level)
    return frame.with_columns(
        pl.Series("lo", lo, dtype=pl.Float64).fill_nan(None),
        pl.Series("hi", hi, dtype=pl.Float64).fill_nan(None),
    )


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def mean_interval(
    values: np.ndarray, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float, str | None]:
    """(lo, hi, note): the percentile bootstrap interval of the mean of per-clip values.

    When every clip gives the same value, every resample does too, and a zero-width
    interval would claim a certainty that n clips do not give: (nan, nan) and a note.
    The percentile method, not BCa: BCa's acceleration is undefined when resamples tie,
    which small sets of 0/1-based values do often, and percentile is the simpler method
    to check by hand.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, None
    if np.all(values == values[0]):
        return math.nan, math.nan, f"every one of the {clips(values.size)} gives {values[0]:.3g}"
    if values.size > RESAMPLE_UP_TO:
        ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=level)
        return float(ci.low), float(ci.high), None
    result = stats.bootstrap(
        (values,),
        _mean,
        n_resamples=N_RESAMPLES,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        batch=_batch(values.size),
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high), None


def sign_flip_p(differences: np.ndarray, seed: int = SEED) -> float:
    """Two-sided p of the mean of per-clip paired differences being 0: each clip's
    difference keeps or flips its sign (exact when 2^n ≤ N_RESAMPLES; the t-test beyond
    RESAMPLE_UP_TO clips)."""
    d = np.asarray(differences, dtype=np.float64)
    if not np.any(d):
        return 1.0
    if d.size > RESAMPLE_UP_TO:
        return float(stats.ttest_1samp(d, 0.0).pvalue)
    result = stats.permutation_test(
        (d,),
        _mean,
        permutation_type="samples",
        n_resamples=N_RESAMPLES,
        vectorized=True,
        batch=_batch(d.size),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def paired_difference(first: np.ndarray, second: np.ndarray, seed: int = SEED) -> dict:
    """second − first over clips (one pair of per-clip values per clip): n_clips, the two
    means, mean_diff, its interval lo/hi, p and reject; below the minimum, `verdict`
    says so and lo, hi, p and reject are None."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    n = first.size
    d = second - first
    row = {
        "n_clips": n,
        "mean_first": float(first.mean()) if n else None,
        "mean_second": float(second.mean()) if n else None,
        "mean_diff": float(d.mean()) if n else None,
        "lo": None,
        "hi": None,
        "p": None,
        "reject": None,
        "verdict": not_tested("paired difference", n),
    }
    if row["verdict"]:
        return row
    lo, hi, note = mean_interval(d, seed)
    row["lo"], row["hi"] = (None, None) if note else (lo, hi)
    row["p"] = sign_flip_p(d, seed)
    row["reject"] = row["p"] < SIGNIFICANCE
    verdict = "differ" if row["reject"] else "no difference shown"
    row["verdict"] = f"{verdict} (p {'<' if row['reject'] else '≥'} {SIGNIFICANCE})"
    if note:
        row["verdict"] += f"; no interval: {note}"
    return row
