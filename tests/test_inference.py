"""The report's statistics, recomputed independently (numpy enumerations, scipy, the
textbook formulas) on planted acceptances whose answer is known (tests/planted.py).

Properties: a test pools clips, not the cells computed from them (twenty cells of five
clips do not give p = 0.0004, and with enough clips the p is the exact sign-flip p of
the per-clip differences); below a test's minimum no statistic, p-value or interval is
given, the report says why and the page says at its top that it is illustrative; an
all-ones matrix gives Wilson intervals of positive width and no zero-width bootstrap
interval; a flat-earther is named only when both intervals of its gaps exclude the
margin.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from planted import models, plant
from scipy import stats

from sigwarehouse.analyses import accuracy, bootstrap, flat_earthers, inference
from sigwarehouse.analyses import sufficient_vs_complete as svc

pytestmark = pytest.mark.core


def _connect(path: Path, accepted: np.ndarray, correct=None) -> duckdb.DuckDBPyConnection:
    plant(path, accepted, correct)
    return duckdb.connect(str(path), read_only=True)


def _off_diagonal(n_models: int) -> list[tuple[int, int]]:
    return [(s, t) for s in range(n_models) for t in range(n_models) if s != t]


def _per_clip_shares(accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, the share of off-diagonal (source, target) pairs accepted: sufficient,
    complete (every clip has both kinds in the planted data)."""
    pairs = _off_diagonal(accepted.shape[2])
    shares = [[np.mean([accepted[k, c, s, t] for s, t in pairs])
               for c in range(accepted.shape[1])] for k in (0, 1)]  # fmt: skip
    return np.array(shares[0]), np.array(shares[1])


def _exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of mean(d) = 0 over all 2^n sign flips (by enumeration)."""
    observed = abs(d.mean())
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    means = np.abs(flips @ d / d.size)
    return float(np.mean(means >= observed - 1e-12))


def _clip_effect(
    rng: np.random.Generator, n_clips: int, n_models: int, p_suff: np.ndarray, p_comp: np.ndarray
) -> np.ndarray:
    """Acceptances drawn with a per-clip probability: cells share their clips."""
    shape = (n_clips, n_models, n_models)
    suff = rng.random(shape) < p_suff[:, None, None]
    comp = rng.random(shape) < p_comp[:, None, None]
    return np.stack([suff, comp])  # fmt: skip


def test_twenty_cells_of_five_clips_are_five_clips_not_twenty_pairs(wh_path) -> None:
    rng = np.random.default_rng(3)
    # complete signals accepted more on every clip, clip by clip: a real effect, but of 5
    # clips, and each of the 20 cells is an average over the same 5
    accepted = _clip_effect(rng, 5, 5, np.array([0.1, 0.2, 0.3, 0.2, 0.4]),
                            np.array([0.5, 0.6, 0.7, 0.8, 0.6]))  # fmt: skip
    cells = [(accepted[0, :, s, t].mean(), accepted[1, :, s, t].mean()) for s, t in
             _off_diagonal(5)]  # fmt: skip
    naive = stats.ttest_rel([c for _, c in cells], [s for s, _ in cells])
    assert len(cells) == 20 and naive.pvalue < 0.001  # what the paper's t-test would say
    con = _connect(wh_path, accepted)
    try:
        section = svc.run(con)
    finally:
        con.close()
    rows = {r["task"]: r for r in section.tables[0].frame.iter_rows(named=True)}
    for key in ("p", "all"):
        row = rows[key]
        assert row["n_clips"] == 5 and row["n_pairs"] == 5 * 20
        assert (row["p"], row["lo"], row["hi"], row["reject"]) == (None,) * 4
        assert row["verdict"] == "not tested: n = 5 clips (needs ≥ 8)"
    assert section.below_minimum and "not tested: n = 5 clips (needs ≥ 8)" in (
        section.below_minimum[0])  # fmt: skip


def test_with_enough_clips_the_p_value_is_the_exact_sign_flip_p_of_per_clip_values(
    wh_path,
) -> None:
    rng = np.random.default_rng(5)
    # 10 clips, 4 models: on half the clips complete is accepted far more, on the other
    # half sufficient is; each of the 12 cells pools all 10 clips, so every cell shows
    # about the same small positive difference, and a t-test over cells calls it certain
    p_suff = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.8, 0.8, 0.8, 0.8, 0.7])
    p_comp = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.4, 0.5, 0.5])
    accepted = _clip_effect(rng, 10, 4, p_suff, p_comp)
    suff, comp = _per_clip_shares(accepted)
    d = comp - suff
    cells = [(accepted[0, :, s, t].mean(), accepted[1, :, s, t].mean()) for s, t in
             _off_diagonal(4)]  # fmt: skip
    naive = stats.ttest_rel([c for _, c in cells], [s for s, _ in cells]).pvalue
    con = _connect(wh_path, accepted)
    try:
        frame = svc.run(con).tables[0].frame
    finally:
        con.close()
    row = frame.filter(pl.col("task") == "p").row(0, named=True)
    exact = _exact_sign_flip_p(d)
    assert row["n_clips"] == 10 and row["mean_diff"] == pytest.approx(d.mean())
    assert row["mean_sufficient"] == pytest.approx(suff.mean())
    assert row["p"] == pytest.approx(exact)  # 2^10 flips: scipy enumerates them all
    assert row["reject"] == (exact < 0.05)
    assert naive < 0.05 < exact  # the cells' test would have claimed what clips do not show
    # the interval: a percentile bootstrap over clips, recomputed with plain numpy
    draws = np.random.default_rng(0).integers(0, 10, size=(20000, 10))
    lo, hi = np.percentile(d[draws].mean(axis=1), [2.5, 97.5])
    assert row["lo"] == pytest.approx(lo, abs=0.02) and row["hi"] == pytest.approx(hi, abs=0.02)
    assert row["lo"] < d.mean() < row["hi"]


def test_an_all_ones_matrix_gives_wilson_intervals_and_no_zero_width_interval(wh_path) -> None:
    n_clips, n_models = 10, 3
    accepted = np.ones((2, n_clips, n_models, n_models), bool)
    con = _connect(wh_path, accepted)
    try:
        cells = bootstrap.intervals(con)
        tests = svc.run(con).tables[0].frame
        gaps = flat_earthers.gaps(con)
        acc = accuracy.table(con)
    finally:
        con.close()
    # Wilson at k = n: lower bound n / (n + z²), upper bound 1 (the textbook formula)
    z = stats.norm.ppf(0.975)
    assert cells.height == 2 * n_models * (n_models - 1)
    assert (cells["alpha"] == 1.0).all() and (cells["n_clips"] == n_clips).all()
    assert cells["lo"].to_list() == pytest.approx([n_clips / (n_clips + z**2)] * cells.height)
    assert cells["hi"].to_list() == pytest.approx([1.0] * cells.height)
    assert acc["lo"].to_list() == pytest.approx([n_clips / (n_clips + z**2)] * n_models)
    assert acc.select("n_clips", "accuracy", "hi", "reported", "reported_n").unique().rows() == [
        (n_clips, 1.0, 1.0, 0.9, 50)
    ]  # the warehouse's figure with its n, beside the catalog's with its own
    # every clip's difference is 0: p = 1, and no interval rather than [0, 0]
    row = tests.filter(pl.col("task") == "p").row(0, named=True)
    assert row["mean_diff"] == 0.0 and row["p"] == 1.0 and row["reject"] is False
    assert (row["lo"], row["hi"]) == (None, None)
    assert "no interval: every one of the 10 clips gives 0" in row["verdict"]
    assert (gaps["gap_out"] == 0.0).all() and gaps["gap_out_lo"].is_null().all()
    assert not gaps["flat_earther"].any()


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 2), (2, 2), (3, 7), (18, 25), (0, 40)])
def test_wilson_is_the_score_interval(k: int, n: int) -> None:
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = inference.wilson(k, n)
    assert (lo, hi) == (
        pytest.approx(max(0.0, centre - half)),
        pytest.approx(min(1.0, centre + half)),
    )
    assert hi - lo > 0
    assert all(math.isnan(x) for x in inference.wilson(0, 0))


def test_a_flat_earther_is_named_only_when_its_intervals_exclude_the_margin(tmp_path) -> None:
    from sigwarehouse import store

    def planted_gaps(n_clips: int, seed: int) -> tuple[pl.DataFrame, list, np.ndarray]:
        rng = np.random.default_rng(seed)
        # p4 is deaf and mute: it rejects the others' signals and they reject its own
        accepted = rng.random((2, n_clips, 4, 4)) < 0.8
        accepted[:, :, 3, :] = rng.random((2, n_clips, 4)) < 0.15
        accepted[:, :, :, 3] = rng.random((2, n_clips, 4)) < 0.15
        path, _ = store.init(tmp_path / f"w{n_clips}.duckdb")
        con = _connect(path, accepted)
        try:
            section = flat_earthers.run(con)
            view = con.execute(
                "SELECT kind, model, gap_out, gap_in FROM flat_earthers ORDER BY ALL"
            ).fetchall()
        finally:
            con.close()
        return section, view, accepted

    section, view, accepted = planted_gaps(12, 1)
    frame = section.tables[0].frame
    named = frame.filter(pl.col("flat_earther"))
    assert named.select("kind", "model").rows() == [("complete", "p4"), ("sufficient", "p4")]
    assert (named["gap_out_hi"] < -0.1).all() and (named["gap_in_hi"] < -0.1).all()
    assert sum("p4 is a flat-earther" in n for n in section.notes) == 2
    assert not section.below_minimum
    # every model explained every clip: the mean of per-clip gaps is the view's gap
    for kind, model, gap_out, gap_in in view:
        row = frame.filter((pl.col("kind") == kind) & (pl.col("model") == model)).row(0, named=True)
        assert (row["gap_out"], row["gap_in"]) == (pytest.approx(gap_out), pytest.approx(gap_in))
    # recomputed by hand for p4's sufficient signals: per clip, its share minus its peers'
    k, names = 0, models(4)
    out = np.array([[np.mean([accepted[k, c, s, t] for t in range(4) if t != s])
                     for s in range(4)] for c in range(12)])  # fmt: skip
    per_clip = out[:, 3] - out[:, :3].mean(axis=1)
    row = frame.filter((pl.col("kind") == "sufficient") & (pl.col("model") == names[3]))
    assert row["gap_out"][0] == pytest.approx(per_clip.mean())
    assert row["gap_out_lo"][0] <= per_clip.mean() <= row["gap_out_hi"][0]

    # the same pattern over 5 clips: the view still calls it, the report names nobody
    section, view, _ = planted_gaps(5, 2)
    frame = section.tables[0].frame
    assert not frame["flat_earther"].any()
    assert set(frame["verdict"]) == {"not tested: n = 5 clips (needs ≥ 8)"}
    assert frame["gap_out_lo"].is_null().all()
    assert any("No model is named a flat-earther" in n for n in section.notes)
    assert section.below_minimum and "Flat-earthers:" in section.below_minimum[0]


def test_below_the_minimum_the_sentence_names_n_and_the_minimum() -> None:
    assert inference.not_tested("paired difference", 2) == "not tested: n = 2 clips (needs ≥ 8)"
    assert inference.not_tested("paired difference", 1) == "not tested: n = 1 clip (needs ≥ 8)"
    assert inference.not_tested("paired difference", 8) is None
    assert set(inference.MIN_CLIPS.values()) == {8}
    # below its minimum, a paired difference gives its means and n only
    row = inference.paired_difference(np.zeros(7), np.ones(7))
    assert row["mean_diff"] == 1.0 and row["n_clips"] == 7
    assert (row["p"], row["lo"], row["hi"], row["reject"]) == (None,) * 4


def test_beyond_the_resampling_limit_the_t_test_of_per_clip_values_takes_over() -> None:
    rng = np.random.default_rng(11)
    n = inference.RESAMPLE_UP_TO
    d = rng.normal(0.05, 1.0, n + 1)
    t = stats.ttest_1samp(d, 0.0)
    ci = t.confidence_interval(0.95)
    lo, hi, note = inference.mean_interval(d)
    assert note is None and (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert inference.sign_flip_p(d) == pytest.approx(t.pvalue)
    # at the limit itself the clips are still resampled, and the answers agree closely
    lo, hi, _ = inference.mean_interval(d[:n])
    ci = stats.ttest_1samp(d[:n], 0.0).confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low, abs=0.01), pytest.approx(ci.high, abs=0.01))
    assert inference.sign_flip_p(d[:n]) == pytest.approx(stats.ttest_1samp(d[:n], 0).pvalue,
                                                         abs=0.02)  # fmt: skip


def test_the_intervals_of_a_whole_table_are_scipys_to_the_last_bit() -> None:
    """wilson_bounds computes a table's intervals at once; each is the interval scipy's
    binomtest gives for its cell, exactly (the report's CSVs did not change), with NaN
    where a cell has no clip."""
    k = np.array([k for n in range(1, 61) for k in range(n + 1)] + [0])
    n = np.array([n for n in range(1, 61) for _ in range(n + 1)] + [0])
    lo, hi = inference.wilson_bounds(k, n)
    for i in range(len(k) - 1):
        ci = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(method="wilson")
        assert (lo[i], hi[i]) == (ci.low, ci.high), (k[i], n[i])
    assert np.isnan(lo[-1]) and np.isnan(hi[-1])
