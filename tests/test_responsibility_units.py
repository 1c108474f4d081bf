"""ReX-style responsibility on a toy model whose verdicts are stated rules over the bins.

The model (`RuleModel`) reads which rfft bins a signal holds and gives the target class
a stated probability of that set (dyadic, so every verdict is exact); the clips are
impulses, whose rfft is 1 in every bin, so a masked clip holds exactly the mask's
bins. Checked here:

- `_cut`: n_parts contiguous parts that cover the band, none narrower than min_width,
  every admissible cut reachable, and a band with no slack cut one way only;
- `_popcounts`: the size of every combination of parts;
- `_credit_split`: part x gets 1 / |P| for the smallest passing combination P that
  contains x and fails without x (hand-derived cases, monotone or not);
- `responsibility_maps` on splits whose cuts are forced (a band exactly n_parts *
  min_band_bins wide), derived by hand; also one with a seeded root cut (checked) and
  forced cuts below it, where a node's other kept bands alone (every part of a split
  removed) keep the class and are the node refined next;
- `responsibility_maps` against an independent, brute-force reading of the
  algorithm's description (`reference`: one tree at a time, every combination judged
  by the rule itself, credit added bin by bin, the next node the passing combination
  of least kept bandwidth, then higher target probability, then first asked), on
  random cuts with several seeds, depths, queue lengths, margins and confidence
  filters; the queries per clip are the distinct (clip, mask) pairs the reference
  asks, and each level is one round trip to the oracle.

The oracle is the real one; only the model is a toy. The reference draws its cuts with
the module's `_cut` and the seeds the docstring names, and does everything else itself.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from sigwarehouse.freqrex import FreqrexParams
from sigwarehouse.freqrex.oracle import Oracle
from sigwarehouse.freqrex.responsibility import (
    _credit_split,
    _cut,
    _popcounts,
    _Split,
    responsibility_maps,
)
from sigwarehouse.freqrex.spectral import FFTSpace
from sigwarehouse.models.base import AudioClassifier

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

Rule = Callable[[frozenset[int]], float]  # held bins -> the target's probability


class RuleModel(AudioClassifier):
    """Two classes; for a signal of length L the target (column targets[L]) gets
    p = rules[L](bins held) and the other class 1 - p."""

    def __init__(self, rules: dict[int, Rule], targets: dict[int, int]):
        super().__init__(["zero", "one"], 16000)
        self.rules, self.targets = rules, targets

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        held = torch.fft.rfft(waves.double(), dim=-1).abs() > 0.5
        length = waves.shape[1]
        p = torch.tensor(
            [self.rules[length](frozenset(np.flatnonzero(h).tolist())) for h in held.numpy()]
        )
        t = self.targets[length]
        out = torch.stack([1 - p, p] if t == 1 else [p, 1 - p], dim=1)
        return out.float()


def impulse(length: int) -> torch.Tensor:
    wave = torch.zeros(length)
    wave[0] = 1.0  # rfft: 1 in every bin
    return wave


def win(p: float, when: Callable[[frozenset[int]], bool]) -> Rule:
    return lambda bins: p if when(bins) else 0.25


# --- _cut, _popcounts, _credit_split ------------------------------------------------------


@pytest.mark.parametrize(
    ("band", "n_parts", "min_width", "possible"),
    [
        # slack 1: the two cuts sit at 7 or 8 and at 9 or 10, in order
        ((5, 12), 3, 2, {(7, 9), (7, 10), (8, 10)}),
        # slack 2 on two parts of at least 1: the cut at 1, 2 or 3
        ((0, 4), 2, 1, {(1,), (2,), (3,)}),
        # no slack: one way only
        ((3, 9), 3, 2, {(5, 7)}),
        ((10, 12), 2, 1, {(11,)}),
    ],
)
def test_cut_makes_contiguous_parts_at_least_min_width_wide_with_every_cut_reachable(
    band, n_parts, min_width, possible
):
    seen = set()
    for seed in range(200):
        parts = _cut(band, n_parts, min_width, np.random.default_rng(seed))
        assert len(parts) == n_parts
        assert parts[0][0] == band[0] and parts[-1][1] == band[1]
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert all(e - s >= min_width for s, e in parts)
        seen.add(tuple(e for _, e in parts[:-1]))
    assert seen == possible


def test_popcounts_are_the_sizes_of_the_combinations():
    assert _popcounts(3).tolist() == [0, 1, 1, 2, 1, 2, 2, 3]
    assert _popcounts(2).tolist() == [0, 1, 1, 2]


def split_with(passing: set[int], n_parts: int = 3) -> _Split:
    """A split whose combinations in `passing` pass (bit x of s: part x kept)."""
    split = _Split(None, [], [(0, 1)] * n_parts, 1, None)
    split.passes = np.array([s in passing for s in range(1 << n_parts)])
    return split


@pytest.mark.parametrize(
    ("passing", "expected"),
    [
        # only all three together: each is needed beside the two others
        ({7}, [1 / 3, 1 / 3, 1 / 3]),
        # part 0 alone suffices (every combination with it passes): 1 for it, nothing else
        ({1, 3, 5, 7}, [1, 0, 0]),
        # any two of the three: each needs one other
        ({3, 5, 6, 7}, [1 / 2, 1 / 2, 1 / 2]),
        # parts 0 and 1 together, or all three (not monotone): {0, 1} minus either
        # fails (1/2); part 2 is never needed, since {0, 1} passes without it
        ({3, 7}, [1 / 2, 1 / 2, 0]),
        # part 2 alone, or 0 and 1 together: 2 alone (1); 0 and 1 each in {0, 1} (1/2)
        ({4, 3, 5, 6, 7}, [1 / 2, 1 / 2, 1]),
        # everything passes, the empty signal too: nothing is a cause
        (set(range(8)), [0, 0, 0]),
        # part 1 alone, or everything: 1 alone (1); 0 and 2 each beside the two others
        # (1/3), since {1, 2} and {0, 1} fail
        ({2, 7}, [1 / 3, 1, 1 / 3]),
    ],
)
def test_credit_is_one_over_the_smallest_passing_combination_the_part_is_needed_in(
    passing, expected
):
    r = _credit_split(split_with(passing), 3, _popcounts(3))
    assert r.tolist() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("passing", "expected"),
    [
        ({3}, [1 / 2, 1 / 2]),
        ({1, 3}, [1, 0]),
        ({2, 3}, [0, 1]),
        ({1, 2, 3}, [1, 1]),
        ({0, 1, 2, 3}, [0, 0]),
    ],
)
def test_credit_with_two_parts(passing, expected):
    assert _credit_split(split_with(passing, 2), 2, _popcounts(2)).tolist() == expected


# --- responsibility_maps on forced cuts -----------------------------------------------------

SIX = 10  # samples of a 6-bin clip: with n_parts 3 and min_band_bins 2 the root is cut
# (0, 2), (2, 4), (4, 6) and no part is ever cut again


def maps_for(rules: dict[int, Rule], lengths: list[int], params: FreqrexParams, empty=None,
             clips=None, targets=None, sigma=None, seed=7):  # fmt: skip
    targets = targets or {n: 0 for n in rules}
    oracle = Oracle(RuleModel(rules, targets), [impulse(n) for n in lengths], FFTSpace)
    n = len(lengths)
    clips = np.arange(n) if clips is None else np.asarray(clips)
    target = np.array([targets[length] for length in lengths])
    sigma = np.ones(n) if sigma is None else np.asarray(sigma, dtype=float)
    empty = np.zeros(n, dtype=bool) if empty is None else np.asarray(empty)
    seeds = [[seed, row] for row in range(n)]
    return responsibility_maps(oracle, clips, target, sigma, empty, seeds, params), oracle


FORCED = FreqrexParams(n_parts=3, min_band_bins=2, iterations=2, decision_margin=0.0)


@pytest.mark.parametrize(
    ("rule", "expected", "queries"),
    [
        # bins 0 and 5 both needed: parts 0 and 2 each need the other (1/2), part 1 nothing;
        # the next node {part 0, part 2} has no band wide enough to cut
        (win(0.75, lambda b: {0, 5} <= b), [0.5, 0.5, 0, 0, 0.5, 0.5], 6),
        # bin 0 alone: part 0 alone keeps the class and the others without it do not
        (win(0.75, lambda b: 0 in b), [1, 1, 0, 0, 0, 0], 6),
        # two of bins 0, 2, 4 (one in each part): each part needs one other
        (win(0.75, lambda b: len(b & {0, 2, 4}) >= 2), [0.5] * 6, 6),
        # bins 3 and 4 (parts 1 and 2): each needs the other, part 0 is never needed
        (win(0.75, lambda b: {3, 4} <= b), [0, 0, 0.5, 0.5, 0.5, 0.5], 6),
        # nothing but the whole signal keeps the class: each part needs the two others
        (win(0.75, lambda b: len(b) == 6), [1 / 3] * 6, 6),
    ],
)
def test_a_root_cut_into_forced_parts_gets_the_credit_derived_by_hand(rule, expected, queries):
    maps, oracle = maps_for({SIX: rule}, [SIX], FORCED)
    assert maps.dtype == np.float32 and maps.shape == (1, 6)
    assert maps[0].tolist() == pytest.approx(expected, abs=1e-6)
    # the 6 proper non-empty combinations, asked once (the second tree asks the same)
    assert oracle.queries.tolist() == [queries] and oracle.reused == queries
    assert set(oracle.by_phase) == {"responsibility"} and oracle.rounds == 1


def test_when_the_empty_signal_keeps_the_class_no_part_alone_is_a_cause():
    # the target wins with bin 0 or with nothing at all (the empty signal passes):
    # part 0 alone passes, but so does the empty combination, so part 0 gets credit only
    # where removing it fails: {0, 1} -> {1} fails (1/2), likewise {0, 2}; parts 1, 2 none
    rule = win(0.75, lambda b: 0 in b or not b)
    maps, _ = maps_for({SIX: rule}, [SIX], FORCED, empty=[True])
    assert maps[0].tolist() == pytest.approx([0.5, 0.5, 0, 0, 0, 0])
    unaware, _ = maps_for({SIX: rule}, [SIX], FORCED, empty=[False])
    assert unaware[0].tolist() == pytest.approx([1, 1, 0, 0, 0, 0])


def test_rows_not_asked_for_stay_zero_and_a_shorter_clip_ends_early():
    # two clips, 16 and 6 bins; only the 6-bin one (row 1) is explained: row 0 stays 0,
    # row 1's map is 16 wide, zero past its 6 bins
    rules = {30: win(0.75, lambda b: True), SIX: win(0.75, lambda b: 0 in b)}
    maps, oracle = maps_for(rules, [30, SIX], FORCED, clips=[1])
    assert maps.shape == (2, 16)
    assert maps[0].tolist() == [0.0] * 16
    assert maps[1].tolist() == pytest.approx([1, 1] + [0] * 14)
    assert oracle.queries.tolist() == [0, 6]


def test_the_target_column_and_sigma_are_the_rows_own():
    # the 6-bin clip's target is class 1, the 16-bin clip's class 0; with a confidence
    # filter of 1/2 a pass needs p >= sigma / 2 too: the 6-bin clip's rule gives 0.625
    # with bin 0, which passes against sigma 1 (part 0 alone: 1) but not against sigma
    # 1.5, where only the whole signal passes (each part needs the two others: 1/3)
    params = FreqrexParams(n_parts=3, min_band_bins=2, iterations=1, decision_margin=0.0,
                           confidence_filter=0.5, max_depth=1)  # fmt: skip
    rules = {30: win(0.75, lambda b: False), SIX: win(0.625, lambda b: 0 in b)}
    maps, _ = maps_for(rules, [30, SIX], params, targets={30: 0, SIX: 1}, sigma=[1.0, 1.0])
    assert maps[1, :6].tolist() == pytest.approx([1, 1, 0, 0, 0, 0])
    maps, _ = maps_for(rules, [30, SIX], params, targets={30: 0, SIX: 1}, sigma=[1.0, 1.5])
    assert maps[1, :6].tolist() == pytest.approx([1 / 3] * 6)


NINE = 16  # samples of a 9-bin clip


def test_a_passing_band_kept_beside_a_split_band_is_itself_a_candidate_for_the_next_node():
    # The combination that removes every part of a split and keeps only the node's other
    # bands (the "static" bands) is a candidate for the next node like any other; when it
    # passes it is the narrowest of its split. Here it is the one chosen, and the level
    # after refines it again, where without it another node would be refined instead.
    #
    # 9 bins, n_parts 3, min_band_bins 1, queue_len 2, max_depth 3, one tree. Seed [19, 0]
    # cuts the root into A = 0-2, B = 3-5, C = 6-8 (checked first); every later cut is of
    # a 3-bin band, forced into single bins. The target gets 7/8 with bins 0 and 4, else
    # 3/4 with all of A, else 1/4 (fails).
    #
    # Level 0 (the root): A, AB (7/8) and AC pass, B, C and BC fail. A alone passes and
    # the empty signal fails: A's bins get 1; B and C are never needed (AB and the whole
    # without them still pass with A). Next nodes, narrowest first: [A] (3 bins), then of
    # AB and AC (6 bins each) the likelier, AB.
    # Level 1: [A] cut into 0 | 1 | 2: only all three pass, so each gets 1/3 and no
    # combination passes to be a next node. [A, B] has two 3-bin bands, both cut:
    #   cutting A beside B: B alone fails; B with bin 0 passes (0 and 4, 7/8), without
    #   bin 0 fails: bin 0 alone is a cause beside B, 1. Passing: [B, 0] (4 bins, 7/8),
    #   [B, 0, 1] and [B, 0, 2] (5 bins).
    #   cutting B beside A: A alone passes (the kept-bands-only combination), so does A
    #   with any part of B: no part of B is needed, no credit. Passing: [A] (3 bins),
    #   [A, 3], [A, 5] (4 bins, 3/4), [A, 4] (4 bins, 7/8) and the 5-bin ones.
    # The two next nodes: [A] (3 bins), then of the 4-bin ones at 7/8 the first asked,
    # [B, 0] (the cut of A is asked before the cut of B). Without the kept-bands-only
    # candidate they would be [B, 0] and [A, 4].
    # Level 2: [A] again: 1/3 to each of bins 0-2. [B, 0]: only B (3 bins) is cut; bin 0
    # alone fails, bin 0 with bin 4 passes, without it fails: bin 4 gets 1.
    # (Refining [A, 4] instead of [A] would give bin 0 alone 1: it passes beside bin 4.)
    #
    # Sums: bin 0: 1 + 1/3 + 1 + 1/3 = 8/3; bins 1, 2: 1 + 1/3 + 1/3 = 5/3; bin 4: 1.
    assert _cut((0, 9), 3, 1, np.random.default_rng([19, 0, 0])) == [(0, 3), (3, 6), (6, 9)]

    def rule(b: frozenset[int]) -> float:
        return 0.875 if {0, 4} <= b else (0.75 if {0, 1, 2} <= b else 0.25)

    params = FreqrexParams(n_parts=3, min_band_bins=1, iterations=1, max_depth=3,
                           queue_len=2, decision_margin=0.0)  # fmt: skip
    maps, oracle = maps_for({NINE: rule}, [NINE], params, seed=19)
    assert maps[0].tolist() == pytest.approx([8 / 3, 5 / 3, 5 / 3, 0, 1, 0, 0, 0, 0])
    # distinct masks asked: 6 at level 0; at level 1 the 6 proper combinations of A's
    # bins, 6 of B with some of A's bins and 6 of A with some of B's (B alone and A
    # alone were asked at level 0); at level 2 [A]'s 6 again (reused) and bin 0 with the
    # 6 proper combinations of B's bins (bin 0 alone was asked at level 1): 30, in 3 rounds
    assert oracle.queries.tolist() == [30] and oracle.rounds == 3


# --- responsibility_maps against a brute-force reference ----------------------------------


def reference(rules: dict[int, Rule], lengths, clips, target, sigma, empty, seeds, params):
    """The maps, the (clip, bins) pairs asked and the number of levels, one tree at a time."""
    n_vars = [n // 2 + 1 for n in lengths]
    width = max(n_vars)
    n, full = params.n_parts, (1 << params.n_parts) - 1
    maps = np.zeros((len(lengths), width))
    asked: set[tuple[int, frozenset[int]]] = set()
    levels = 0

    def held(bands):
        return frozenset(v for b, e in bands for v in range(b, e))

    def verdict(c, bands):
        p = rules[lengths[c]](held(bands))
        ok = p - (1 - p) >= params.decision_margin
        if params.confidence_filter > 0:
            ok = ok and p >= params.confidence_filter * sigma[c] + params.decision_margin
        return ok, p

    for c in clips:
        for it in range(params.iterations):
            rng = np.random.default_rng([*seeds[c], it])
            frontier = [[(0, n_vars[c])]]
            for depth in range(params.max_depth):
                candidates, asked_here = [], 0
                for node in frontier:
                    widths = [e - b for b, e in node]
                    by_width = sorted(range(len(node)), key=lambda a: (-widths[a], a))
                    wide = [a for a in by_width if widths[a] >= n * params.min_band_bins]
                    for a in sorted(wide[: params.max_split_bands]):
                        parts = _cut(node[a], n, params.min_band_bins, rng)
                        static = node[:a] + node[a + 1 :]
                        ok, p, order = {full: True}, {}, {}
                        for s in range(full):
                            kept = static + [parts[x] for x in range(n) if s >> x & 1]
                            if not kept:
                                ok[s] = bool(empty[c])
                                continue
                            ok[s], p[s] = verdict(c, kept)
                            asked.add((c, held(kept)))
                            order[s] = asked_here
                            asked_here += 1
                        for x, (b, e) in enumerate(parts):
                            needed = [bin(s).count("1") for s in range(1, full + 1)
                                      if s >> x & 1 and ok[s] and not ok[s ^ (1 << x)]]  # fmt: skip
                            maps[c, b:e] += 1 / min(needed) / params.iterations if needed else 0
                        for s in range(full):
                            kept = static + [parts[x] for x in range(n) if s >> x & 1]
                            if kept and ok[s]:
                                size = sum(e - b for b, e in kept)
                                candidates.append((size, -p[s], order[s], kept))
                levels = max(levels, depth + 1 if asked_here else depth)
                frontier = [k for *_, k in sorted(candidates, key=lambda x: x[:3])][
                    : params.queue_len
                ]
                if not frontier:
                    break
    return maps.astype(np.float32), asked, levels


def check_against_reference(rules, lengths, params, empty=None, sigma=None, targets=None):
    n = len(lengths)
    targets = targets or {length: 0 for length in rules}
    target = np.array([targets[length] for length in lengths])
    sigma = np.ones(n) if sigma is None else np.asarray(sigma, dtype=float)
    empty = np.zeros(n, dtype=bool) if empty is None else np.asarray(empty)
    seeds = [[11, 3 * row + 1] for row in range(n)]
    oracle = Oracle(RuleModel(rules, targets), [impulse(x) for x in lengths], FFTSpace)
    clips = np.arange(n)
    maps = responsibility_maps(oracle, clips, target, sigma, empty, seeds, params)
    expected, asked, levels = reference(rules, lengths, clips, target, sigma, empty, seeds, params)
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected, rtol=0, atol=1e-6)
    assert oracle.queries.tolist() == [sum(1 for c, _ in asked if c == row) for row in range(n)]
    assert oracle.rounds == levels
    return maps


def ladder(*steps: tuple[set[int], float]) -> Rule:
    """p = the first step's p whose bins are all held, else 1/4."""
    return lambda b: next((p for need, p in steps if need <= b), 0.25)


# two clips of 16 and 11 bins; the rules reward a few scattered bins, with probabilities
# that differ between passing masks (so ties in kept bandwidth go by probability)
RULES = {
    30: ladder(({3, 12}, 0.875), ({3, 9}, 0.75), ({14}, 0.625)),
    20: ladder(({1, 8}, 0.75), ({5}, 0.625), ({0, 10}, 0.875)),
}


@pytest.mark.parametrize(
    "params",
    [
        dict(n_parts=3, min_band_bins=1, max_depth=4, iterations=3),
        dict(n_parts=3, min_band_bins=2, max_depth=3, iterations=2, queue_len=2),
        dict(n_parts=3, min_band_bins=1, max_depth=5, iterations=2, max_split_bands=1),
        dict(n_parts=2, min_band_bins=1, max_depth=6, iterations=2, queue_len=3),
        dict(n_parts=2, min_band_bins=2, max_depth=2, iterations=1, max_split_bands=3),
        dict(n_parts=4, min_band_bins=1, max_depth=3, iterations=1, queue_len=2),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_maps_match_the_brute_force_reference(params, seed):
    p = FreqrexParams(seed=seed, decision_margin=0.0, **params)
    check_against_reference(RULES, [30, 20], p)


@pytest.mark.parametrize(
    ("margin", "confidence", "sigma"),
    [
        (0.25, 0.0, [1.0, 1.0]),
        (0.0, 0.75, [1.0, 1.0]),
        (0.125, 0.5, [1.0, 1.5]),
        (0.25, 0.5, [0.5, 0.5]),
    ],
)
def test_maps_match_the_reference_with_margins_and_confidence_filters(margin, confidence, sigma):
    # the probabilities 5/8, 3/4, 7/8 sit on either side of the thresholds these make
    p = FreqrexParams(n_parts=3, min_band_bins=1, max_depth=4, iterations=2,
                      decision_margin=margin, confidence_filter=confidence)  # fmt: skip
    check_against_reference(RULES, [30, 20], p, sigma=sigma)


def test_maps_match_the_reference_when_the_empty_signal_keeps_the_class():
    # the 16-bin clip keeps the class with nothing (p 5/8) unless it holds bin 7
    rules = {30: lambda b: 0.25 if 7 in b else (0.875 if {2, 11} <= b else 0.625), 20: RULES[20]}
    p = FreqrexParams(n_parts=3, min_band_bins=1, max_depth=4, iterations=3, decision_margin=0.0)
    check_against_reference(rules, [30, 20], p, empty=[True, False], targets={30: 1, 20: 0})


def test_every_clip_gets_the_same_map_whoever_shares_the_call():
    p = FreqrexParams(n_parts=3, min_band_bins=1, max_depth=4, iterations=2, decision_margin=0.0)
    both, _ = maps_for(RULES, [30, 20], p)
    alone, _ = maps_for(RULES, [30, 20], p, clips=[1])
    assert np.array_equal(both[1], alone[1]) and both[1].any()


LONG = 62  # samples of a 32-bin clip


@pytest.mark.parametrize("max_split_bands", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_band_beside_kept_bands_that_already_keep_the_class_gets_nothing(seed, max_split_bands):
    # The target needs bin 31 only. With queue_len 3 every passing combination of the
    # root's parts is refined: {2}, {0, 2} and {1, 2}. Cutting part 0 of {0, 2} leaves
    # part 2 beside it, which keeps the class alone: none of part 0's pieces is a cause,
    # so bin 0 (always in part 0, which never holds bin 31) gets no credit at any level.
    # With max_split_bands 1 only the wider of two bands is cut.
    p = FreqrexParams(seed=seed, n_parts=3, min_band_bins=2, max_depth=3, iterations=4,
                      queue_len=3, max_split_bands=max_split_bands,
                      decision_margin=0.0)  # fmt: skip
    maps = check_against_reference({LONG: win(0.75, lambda b: 31 in b)}, [LONG], p)
    assert maps[0, 0] == 0 and maps[0, 31] >= 2
