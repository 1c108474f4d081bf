"""The search's steps one at a time, on a toy model whose answers can be worked out by hand.

The model (`BinRule`) reads which rfft bins a signal holds and answers by a stated rule
over them; the clip is an impulse, whose rfft is 1 in every bin, so a masked signal holds
exactly the mask's bins. Its probabilities are dyadic and the decision margin is 0, so
every threshold and every slack is exact. With that, each test states what a step must
do and the numbers it must give, derived in the comments:

- `_units` cuts a mask's kept bins into groups of consecutive kept bins;
- `_prefix_lengths` tries the prefix length the slacks predict and its stated multiples;
- `_shrink` (one granularity of the group testing) removes, per round, the units that
  leave most slack first (ties: lowest first), as many together as the slack has room
  for; every round removes what holds; it never adds a bin; it returns the share of units
  its last round found removable alone;
- `_one_by_one` removes runs of bins in doubling chunks and certifies the result;
- a delta-completeness test stops at its first failing half, and asks first the half
  that has decided more of the clip's failures.

The search runs on the real `Oracle` and `drive`; only the model is a toy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from sigwarehouse.freqrex import FreqrexParams
from sigwarehouse.freqrex.oracle import Oracle
from sigwarehouse.freqrex.search import (
    Context,
    Property,
    _one_by_one,
    _prefix_lengths,
    _shrink,
    _units,
    complete_property,
    drive,
    grow,
    minimise,
    rank_positions,
    sufficient_property,
)
from sigwarehouse.freqrex.spectral import FFTSpace
from sigwarehouse.models.base import AudioClassifier

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

N_VARS = 16  # rfft bins of a 30-sample clip
SUFFICIENT = Property("sufficient", 0.0, needs_inverse=False)  # top-1 only
COMPLETE = Property("complete", 0.5, needs_inverse=True)  # p >= sigma / 2, complement rejects
W = 1 / 64  # one unit of slack: dyadic, and exact at the 6 decimals slacks are rounded to


class BinRule(AudioClassifier):
    """Two classes, "target" and "other": p[target] = rule(bins the signal holds)."""

    def __init__(self, rule: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__(["target", "other"], 16000)
        self.rule = rule
        self.asked: list[set[int]] = []  # the bins of every signal it was asked about
        self.batches: list[int] = []  # how many signals each call was asked about

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        held = torch.fft.rfft(waves.double(), dim=-1).abs() > 0.5  # each bin is 0 or 1
        self.asked += [set(np.flatnonzero(row).tolist()) for row in held.numpy()]
        self.batches.append(len(held))
        p = self.rule(held).double()
        return torch.stack([p, 1 - p], dim=1).float()


def needs(*bins: int) -> Callable:
    """The target wins (3/4 against 1/4) exactly when every one of `bins` is held."""
    return lambda held: torch.where(held[:, list(bins)].all(dim=1), 0.75, 0.25)


def any_of(*bins: int) -> Callable:
    """The target wins (3/4 against 1/4) when any one of `bins` is held."""
    return lambda held: torch.where(held[:, list(bins)].any(dim=1), 0.75, 0.25)


def at_least(k: int, *bins: int) -> Callable:
    """The target wins (3/4 against 1/4) when at least k of `bins` are held."""
    return lambda held: torch.where(held[:, list(bins)].sum(dim=1) >= k, 0.75, 0.25)


def additive(weights: list[float], threshold: float) -> Callable:
    """p[target] - p[other] = (sum of the held bins' weights) - threshold: a unit's
    removal costs exactly its weights in slack, so the slacks predict exactly."""
    w = torch.zeros(N_VARS, dtype=torch.float64)
    w[: len(weights)] = torch.tensor(weights, dtype=torch.float64)
    return lambda held: 0.5 + (held.double() @ w - threshold) / 2


def one_of_sets(*passing: set[int]) -> Callable:
    """The target wins (3/4 against 1/4) when the held bins among 0-2 are one of `passing`."""
    codes = [sum(2**b for b in bins) for bins in passing]
    return lambda held: torch.where(torch.isin(held[:, :3].long() @ torch.tensor([1, 2, 4]),
                                               torch.tensor(codes)), 0.75, 0.25)  # fmt: skip


def context(rule: Callable, n_clips: int = 1, n_vars: int = N_VARS, **params) -> Context:
    impulse = torch.zeros(2 * (n_vars - 1))
    impulse[0] = 1.0  # rfft: 1 in every bin
    oracle = Oracle(BinRule(rule), [impulse] * n_clips, FFTSpace)
    params = FreqrexParams(**{"decision_margin": 0.0, **params})
    return Context(oracle, np.zeros(n_clips, int), np.ones(n_clips), params, [[0]] * n_clips)


def mask_of(*bins: int) -> np.ndarray:
    mask = np.zeros((1, N_VARS), dtype=bool)
    mask[0, list(bins)] = True
    return mask


def shrink(ctx: Context, prop: Property, mask: np.ndarray, n_units: int, rounds: int):
    """Run _shrink on one clip; returns (the shrunk mask's bins, the share it returned)."""
    masks = mask.copy()
    clips, sel = np.arange(len(masks)), np.arange(len(masks))
    [share] = drive(ctx.oracle, [_shrink(ctx, prop, clips, masks, sel, n_units, rounds, "shrink")])
    return np.flatnonzero(masks[0]).tolist(), share


def holds(ctx: Context, prop: Property, bins: list[int]) -> bool:
    [ok] = drive(ctx.oracle, [ctx.holds(prop, np.array([0]), "check", base=_base(bins))])
    return bool(ok[0])


def _base(bins: list[int]) -> torch.Tensor:
    return torch.as_tensor(mask_of(*bins))


def sizes_asked(ctx: Context) -> list[int]:
    """The prefix sizes the model was asked about (the rank below is the identity)."""
    return [len(q) for q in ctx.oracle.classifier.asked]


IDENTITY = torch.arange(N_VARS, dtype=torch.int32)[None]  # bin i at rank position i


# --- the two properties -----------------------------------------------------------------


def test_completeness_also_needs_the_complement_to_reject_and_p_at_least_delta_sigma():
    # either of bins 0 and 1 keeps the target (p = 3/4, sigma 1)
    ctx = context(any_of(0, 1), delta=0.75, sufficient_confidence=0.75)
    suff, comp = sufficient_property(ctx.params), complete_property(ctx.params)
    assert holds(ctx, suff, [0]) and holds(ctx, comp, [0, 1])
    assert not holds(ctx, comp, [0])  # its complement holds bin 1: it keeps the target
    strict = context(any_of(0, 1), delta=1.0, sufficient_confidence=1.0)  # p < sigma
    suff, comp = sufficient_property(strict.params), complete_property(strict.params)
    assert not holds(strict, suff, [0]) and not holds(strict, comp, [0, 1])


# --- rank_positions -----------------------------------------------------------------------


def test_rank_is_by_responsibility_then_magnitude_then_index_with_disallowed_last():
    # 40 variables: responsibility 1 for the first 4, 0 for the rest; magnitudes
    # alternate 1, 2. Within equal responsibility the larger magnitude goes first, and
    # within equal magnitude the lower index (a stable order, the same on every
    # machine): 1, 3, 0, 2, then the other odd ones, then the even ones, and variable 5,
    # not allowed, last of all.
    n = 40
    responsibility = np.zeros((1, n), dtype=np.float32)
    responsibility[0, :4] = 1.0
    magnitude = torch.tensor([[1.0, 2.0] * (n // 2)])
    allowed = np.ones((1, n), dtype=bool)
    allowed[0, 5] = False
    order = [1, 3, 0, 2]
    order += [v for v in range(4, n) if v % 2 and v != 5] + [v for v in range(4, n, 2)] + [5]
    positions = rank_positions(responsibility, magnitude, allowed)
    assert positions[0].tolist() == np.argsort(order).tolist()


# --- grow --------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [16, 9])
def test_grow_finds_the_smallest_passing_prefix_on_a_grid_as_fine_as_the_bins(limit):
    # the target needs bins 0..s-1: the smallest passing prefix is s, if within the
    # limit. The default grid (12 sizes, 2 rounds) leaves no gap on 16 bins.
    for s in range(1, N_VARS + 1):
        ctx = context(needs(*range(s)))
        [best] = drive(ctx.oracle, [grow(ctx, SUFFICIENT, np.array([0]), IDENTITY,
                                         np.array([limit]), "grow")])  # fmt: skip
        assert best.tolist() == [s if s <= limit else -1]
        assert max(sizes_asked(ctx)) <= limit  # never past the clip's limit


@pytest.mark.parametrize(
    ("s", "rounds", "linear", "found"),
    [
        (5, 2, [4, 5], 5),
        (7, 2, [8, 10, 12, 14], 8),
        (7, 3, [8, 10, 12, 14, 7], 7),
        (10, 3, [8, 10, 12, 14, 9], 10),
    ],
)
def test_grow_tries_a_geometric_grid_then_a_linear_one_inside_the_bracket(s, rounds, linear, found):
    # The target needs bins 0..s-1; clip 0 may use 4 bins, clip 1 all 16. Round one,
    # geometric from 1 to the limit: 1, 2, 3, 4 (none passes: -1) and 1, 3, 6, 16.
    # Round two, 4 sizes evenly strictly inside clip 1's bracket: (3, 6) gives 3.6,
    # 4.2, 4.8, 5.4 -> 4, 5; (6, 16) gives 8, 10, 12, 14. The answer is the smallest
    # passing size seen (8 for s = 7 in two rounds). A third round works inside the new
    # bracket, (6, 8) -> 7 or (8, 10) -> 9 (the largest failing size moved up to 8).
    ctx = context(needs(*range(s)), n_clips=2, grid_size=4, grid_rounds=rounds)
    [best] = drive(ctx.oracle, [grow(ctx, SUFFICIENT, np.array([0, 1]), IDENTITY.repeat(2, 1),
                                     np.array([4, 16]), "grow")])  # fmt: skip
    assert best.tolist() == [-1, found]
    assert sizes_asked(ctx) == [1, 2, 3, 4, 1, 3, 6, 16, *linear]
    assert set(ctx.oracle.by_phase) == {"grow"}


def test_grow_narrows_its_bracket_after_a_round_in_which_every_size_fails():
    # The target needs bins 0..14 of 16. Round one (4 sizes, geometric): 1, 3, 6, 16 ->
    # 16 passes. Round two inside (6, 16): 8, 10, 12, 14 all fail, so the largest failing
    # size is now 14 and round three asks 15, which passes. (Engine 4 kept the bracket
    # at (6, 16) and asked the same four sizes again in every later round, returning 16.)
    ctx = context(needs(*range(15)), grid_size=4, grid_rounds=8)
    [best] = drive(ctx.oracle, [grow(ctx, SUFFICIENT, np.array([0]), IDENTITY, np.array([16]),
                                     "grow")])  # fmt: skip
    assert best.tolist() == [15]
    assert sizes_asked(ctx) == [1, 3, 6, 16, 8, 10, 12, 14, 15]


def test_grow_asks_the_complement_only_of_prefixes_that_keep_the_class():
    # delta-completeness: the target needs bins 0-4, so prefixes from 5 keep it and
    # every complement (bins from the prefix on) rejects it. The mask is asked first
    # (short prefixes fail), its complement only where the mask passed: round one
    # 1, 3, 6, 16 passes at 6 and 16, round two 4, 5 at 5.
    ctx = context(needs(0, 1, 2, 3, 4), grid_size=4, grid_rounds=2)
    [best] = drive(ctx.oracle, [grow(ctx, COMPLETE, np.array([0]), IDENTITY, np.array([16]),
                                     "grow")])  # fmt: skip
    assert best.tolist() == [5]
    complements = [q for q in ctx.oracle.classifier.asked if 0 not in q]
    assert complements == [set(range(6, 16)), set(), set(range(5, 16))]


def test_grow_asks_nothing_of_a_clip_with_no_allowed_bin():
    ctx = context(needs(0))
    [best] = drive(ctx.oracle, [grow(ctx, SUFFICIENT, np.array([0]), IDENTITY, np.array([0]),
                                     "grow")])  # fmt: skip
    assert best.tolist() == [-1]
    assert sizes_asked(ctx) == []


# --- _one_by_one -------------------------------------------------------------------------


def one_by_one(ctx, prop, mask, responsibility, clips=None):
    """Run _one_by_one on the masks' clips (default: oracle rows 0, 1, ...); returns (each
    mask's bins, the shares it returned)."""
    masks = mask.copy()
    sel = np.arange(len(masks))
    clips = sel if clips is None else clips
    search = _one_by_one(ctx, prop, clips, masks, responsibility, sel, "one")
    [share] = drive(ctx.oracle, [search])
    bins = [np.flatnonzero(m).tolist() for m in masks]
    return (bins[0], share) if len(masks) == 1 else (bins, share)


def by_bin(n_clips: int = 1) -> np.ndarray:
    """Responsibility rising with the bin: bins are tried lowest first."""
    return np.tile(np.arange(N_VARS) / N_VARS, (n_clips, 1))


@pytest.mark.parametrize(
    ("resp", "kept"),
    [([0.3, 0.1, 0.2], [0, 2]), ([0.1, 0.3, 0.2], [1, 2]), ([0.2, 0.3, 0.1], [0, 1])],
)
def test_one_by_one_drops_the_least_responsible_bin_first(resp, kept):
    # any 2 of bins 0-2 keep the target: the first bin tried goes, then no other can
    ctx = context(at_least(2, 0, 1, 2))
    responsibility = np.zeros((1, N_VARS))
    responsibility[0, :3] = resp
    bins, share = one_by_one(ctx, SUFFICIENT, mask_of(0, 1, 2), responsibility)
    assert bins == kept
    assert share.tolist() == [0.0]
    assert set(ctx.oracle.by_phase) == {"one"}


@pytest.mark.parametrize(("rounds", "kept", "share"), [(1, [0, 2], 0.5), (2, [2], 0.0)])
def test_certification_drops_what_became_removable_until_none_is(rounds, kept, share):
    # kept among bins 0-2, the target wins for {0, 1, 2}, {0, 2} and {2} only. In order
    # 0, 1, 2: 0 cannot go ({1, 2}), 1 can, 2 cannot ({0}). Certifying {0, 2} finds 0
    # removable now (share 1/2); a second certification, after dropping it, finds none.
    ctx = context(one_of_sets({0, 1, 2}, {0, 2}, {2}), certify_rounds=rounds)
    responsibility = np.zeros((1, N_VARS))
    responsibility[0, :3] = [0.1, 0.2, 0.3]
    bins, got = one_by_one(ctx, SUFFICIENT, mask_of(0, 1, 2), responsibility)
    assert bins == kept
    assert got.tolist() == [share]


def test_one_by_one_tries_equally_responsible_bins_lowest_first():
    # any 13 of the 16 bins keep the target: the first three tried go. Bins alternate
    # between two responsibilities; among equals the lower bin is tried first (a stable
    # order, the same on every machine): 0, 2, 4.
    ctx = context(at_least(13, *range(N_VARS)))
    responsibility = np.tile([0.25, 0.5], (1, N_VARS // 2))
    bins, share = one_by_one(ctx, SUFFICIENT, mask_of(*range(N_VARS)), responsibility)
    assert bins == [b for b in range(N_VARS) if b not in (0, 2, 4)]
    assert share.tolist() == [0.0]


def test_one_by_one_removes_runs_in_doubling_chunks():
    # Bins 0-11 kept, the target needs 0 and 11; tried lowest first, the chunk starting at
    # 1. {0} fails (0 stays, the chunk stays 1); {1} goes, then {2, 3}, then {4..7} (the
    # chunk doubles after each removal); {8..11} fails (11 is needed), so the chunk
    # halves: {8, 9} goes; {10, 11} fails (the mask {0} again, answered from the
    # oracle's memory); {10} goes; {11} alone fails and stays. The certification asks
    # only the mask without 0 (the one without 11 is known): 8 queries in all, where one
    # bin at a time takes 12, and 13 with the certification.
    ctx = context(needs(0, 11))
    bins, share = one_by_one(ctx, SUFFICIENT, mask_of(*range(12)), by_bin())
    assert bins == [0, 11]
    assert share.tolist() == [0.0]
    everything = set(range(12))
    assert ctx.oracle.classifier.asked == [
        everything - {0},
        everything - {1},
        everything - {1, 2, 3},
        everything - set(range(1, 8)),
        {0},
        {0, 10, 11},
        {0, 11},
        {11},
    ]


def test_one_by_one_minimises_each_clip_against_its_own_mask():
    # any 2 of bins 0-3 keep the target; oracle row 1 holds {0, 1, 2}, row 0 all four:
    # lowest first, row 1 keeps {1, 2} and row 0 keeps {2, 3}
    ctx = context(at_least(2, 0, 1, 2, 3), n_clips=2)
    masks = np.concatenate([mask_of(0, 1, 2), mask_of(0, 1, 2, 3)])
    bins, share = one_by_one(ctx, SUFFICIENT, masks, by_bin(2), clips=np.array([1, 0]))
    assert bins == [[1, 2], [2, 3]]
    assert share.tolist() == [0.0, 0.0]


def test_a_complete_test_stops_at_its_first_failing_half_which_comes_first_when_it_leads():
    # The target needs 2 of bins 0-3 held, so the mask must hold 3 of them for its
    # complement (which also holds bins 4-15) to reject. Removing 0: the mask {1, 2, 3}
    # keeps the target (asked first, no failure decided yet), its complement {0} rejects:
    # 0 goes. Removing {1, 2} leaves {3}: the mask fails, its complement is not asked.
    # Removing 1 alone: the mask {2, 3} passes, its complement {0, 1} fails (one failure
    # each now, so the mask still comes first); removing 2 likewise. Removing 3: the
    # complement has decided more failures, so {0, 3} is asked first, fails, and the mask
    # {1, 2} is never asked. The certification's tests are all known.
    ctx = context(at_least(2, 0, 1, 2, 3))
    bins, share = one_by_one(ctx, COMPLETE, mask_of(0, 1, 2, 3), by_bin())
    assert bins == [1, 2, 3]
    assert share.tolist() == [0.0]
    low = [q & {0, 1, 2, 3} for q in ctx.oracle.classifier.asked]
    assert low == [{1, 2, 3}, {0}, {3}, {2, 3}, {0, 1}, {1, 3}, {0, 2}, {0, 3}]


# --- minimise ---------------------------------------------------------------------------


def test_minimise_shrinks_to_the_bins_the_class_needs_and_certifies_them():
    # 16 kept bins, 2 units first (a unit level runs while a unit would hold more than 4
    # bins), then bin by bin: the target needs bins 3 and 9, so exactly they remain,
    # 1-minimal (figure 0) over both bins checked
    ctx = context(needs(3, 9), minimise_units=2)
    search = minimise(ctx, SUFFICIENT, np.array([0]), mask_of(*range(16)), by_bin(), "min")
    [(masks, removable, checked)] = drive(ctx.oracle, [search])
    assert np.flatnonzero(masks[0]).tolist() == [3, 9]
    assert removable.tolist() == [0.0] and checked.tolist() == [2]
    assert set(ctx.oracle.by_phase) == {"min"}


@pytest.mark.parametrize(("kept", "final"), [(8, [0, 1]), (9, [7, 8])])
def test_unit_levels_run_only_while_a_mask_holds_more_than_four_bins_a_unit(kept, final):
    # Any two bins keep the target, and responsibility falls with the bin, so bin by bin
    # alone keeps the two most responsible, 0 and 1. With 2 units a level runs only above
    # 4 * 2 = 8 kept bins: at 9, each round cuts what is left into 2 units of equal
    # slack and the lower goes first (0-4 of 0-8, then 5-6 of 5-8), leaving 7 and 8.
    ctx = context(at_least(2, *range(N_VARS)), minimise_units=2)
    falling = by_bin()[:, ::-1].copy()
    search = minimise(ctx, SUFFICIENT, np.array([0]), mask_of(*range(kept)), falling, "min")
    [(masks, _, _)] = drive(ctx.oracle, [search])
    assert np.flatnonzero(masks[0]).tolist() == final


def test_a_large_masks_figure_is_drawn_from_its_clips_seed_only():
    # 70 kept bins (above per_bin_limit 64), any 69 of them keep the target, and so no
    # unit of several bins can go: the mask stays whole and its figure is measured on 64
    # of its bins. Bins 0-34 are also needed, so the figure is the sampled share of
    # bins 35-69: between 29 and 35 of the 64. Two clips with the same seed and mask get
    # the same sample, whatever their row; a third with another seed may not.
    wide = 80

    def rule(held):
        return torch.where((held[:, :70].sum(dim=1) >= 69) & held[:, :35].all(dim=1), 0.75, 0.25)

    ctx = context(rule, n_clips=3, n_vars=wide, per_bin_limit=64)
    ctx.seeds = [[5], [7], [5]]
    masks = np.zeros((3, wide), dtype=bool)
    masks[:, :70] = True
    search = minimise(ctx, SUFFICIENT, np.array([0, 1, 2]), masks, np.zeros((3, wide)), "min")
    [(shrunk, removable, checked)] = drive(ctx.oracle, [search])
    assert (shrunk == masks).all()
    assert checked.tolist() == [64, 64, 64]
    assert all(29 <= r * 64 <= 35 and r * 64 == round(r * 64) for r in removable)
    assert removable[0] == removable[2]
    assert set(ctx.oracle.by_phase) == {"min"}  # the sample's queries count in the phase


def test_a_mask_of_exactly_per_bin_limit_bins_is_made_1_minimal_bin_by_bin():
    # The large-mask rule (any 69 of bins 0-69, with 0-34 all held) on one clip, with
    # per_bin_limit 70: no unit of several bins can go, so 70 bins reach the limit, which
    # is still bin by bin. Tried lowest first, 0 cannot go, ..., 35 can, then no other:
    # 69 bins remain, 1-minimal over all 69 checked (a sample would check 64).
    wide = 80

    def rule(held):
        return torch.where((held[:, :70].sum(dim=1) >= 69) & held[:, :35].all(dim=1), 0.75, 0.25)

    ctx = context(rule, n_vars=wide, per_bin_limit=70)
    mask = np.zeros((1, wide), dtype=bool)
    mask[0, :70] = True
    ascending = np.arange(wide, dtype=float)[None]  # responsibility: the lower bin first
    search = minimise(ctx, SUFFICIENT, np.array([0]), mask, ascending, "min")
    [(shrunk, removable, checked)] = drive(ctx.oracle, [search])
    assert np.flatnonzero(shrunk[0]).tolist() == [b for b in range(70) if b != 35]
    assert checked.tolist() == [69] and removable.tolist() == [0.0]


def test_of_equally_responsible_variables_the_weaker_is_tried_first():
    # Any 9 of bins 0-9 keep the class, so exactly one can go: the first one tried. All
    # share responsibility 0 (as most variables of a real map do); magnitudes fall with
    # the bin (2.0 at bin 0 to 1.55 at bin 9), so bin 9, the weakest, is tried first and
    # goes (in bin order bin 0 would).
    n_vars = 10
    magnitude = torch.linspace(2.0, 1.55, n_vars, dtype=torch.float64)
    wave = torch.fft.irfft(magnitude, n=2 * (n_vars - 1)).float()
    oracle = Oracle(BinRule(at_least(9, *range(n_vars))), [wave], FFTSpace)
    ctx = Context(oracle, np.zeros(1, int), np.ones(1), FreqrexParams(decision_margin=0.0),
                  [[0]])  # fmt: skip
    masks = np.ones((1, n_vars), dtype=bool)
    search = minimise(ctx, SUFFICIENT, np.array([0]), masks, np.zeros((1, n_vars)), "min")
    [(shrunk, removable, _)] = drive(ctx.oracle, [search])
    assert np.flatnonzero(shrunk[0]).tolist() == list(range(9))
    assert removable.tolist() == [0.0]


def all_or_none(group: list[int], needed: int) -> Callable:
    """The target wins (3/4 against 1/4) when bin `needed` is held and the bins of `group`
    are held all together or not at all."""

    def rule(held: torch.Tensor) -> torch.Tensor:
        some = held[:, group].sum(dim=1)
        return torch.where(held[:, needed] & ((some == 0) | (some == len(group))), 0.75, 0.25)

    return rule


@pytest.mark.parametrize(("kept", "final"), [(17, [0]), (16, [0, 5, 6, 7, 8])])
def test_the_second_unit_level_has_four_times_as_many_units(kept, final):
    # The target needs bin 0, and bins 5-8 held all together or not at all: no one of
    # them can go alone, only the four together. With minimise_units 1 the first level
    # has one unit, the whole mask, which cannot go (bin 0). The next level has 4 units,
    # and runs only while a unit would hold more than 4 bins, above 16 kept bins:
    # - 17 bins (0-16): units 0-4, 5-8, 9-12, 13-16 (5, 4, 4, 4 bins). All but the first
    #   can go alone, with the same slack, so all three go together (the lowest first,
    #   then the prefixes of 3 and 2, of which 3 holds), leaving 0-4; again, in 4 units
    #   0-1, 2, 3, 4, the last three go, leaving 0-1; in 2 units, 1 goes. Bin by bin {0}
    #   is 1-minimal.
    # - 16 bins (0-15): no second level. Bin by bin, lowest first: 1-4 and 9-15 go, but
    #   none of 5-8, leaving {0, 5, 6, 7, 8}, 1-minimal per bin (a bin, not a group).
    # (Five times as many units would need more than 20 bins: 17 would end as 16 does.)
    ctx = context(all_or_none([5, 6, 7, 8], needed=0), n_vars=20, minimise_units=1)
    mask = np.zeros((1, 20), dtype=bool)
    mask[0, :kept] = True
    rising = np.arange(20.0)[None]  # responsibility rising with the bin: lowest tried first
    search = minimise(ctx, SUFFICIENT, np.array([0]), mask, rising, "min")
    [(masks, removable, checked)] = drive(ctx.oracle, [search])
    assert np.flatnonzero(masks[0]).tolist() == final
    assert removable.tolist() == [0.0] and checked.tolist() == [len(final)]


# --- _units ------------------------------------------------------------------------------


def test_units_cut_the_kept_bins_into_consecutive_groups_of_near_equal_count():
    # kept bins 1, 2, 4, 6, 7: two groups of 3 and 2, each spanning [first, last + 1)
    mask = np.zeros(8, dtype=bool)
    mask[[1, 2, 4, 6, 7]] = True
    assert _units(mask, 2) == [(1, 5), (6, 8)]
    # more groups asked than bins kept: one group per kept bin
    assert _units(mask, 8) == [(1, 2), (2, 3), (4, 5), (6, 7), (7, 8)]
    # a single kept bin is a unit of its own (it may be removable); none kept, no unit
    assert _units(np.eye(1, 8, 3, dtype=bool)[0], 4) == [(3, 4)]
    assert _units(np.zeros(8, dtype=bool), 4) == []


def test_units_cover_exactly_the_kept_bins():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random(int(rng.integers(1, 40))) < 0.4
        n = int(rng.integers(1, 12))
        units = _units(mask, n)
        covered = np.zeros_like(mask)
        for a, b in units:
            assert mask[a] and mask[b - 1]  # a unit starts and ends on a kept bin
            assert not covered[a:b].any()  # units are disjoint
            covered[a:b] = True
        assert (covered & mask).sum() == mask.sum()  # and hold every kept bin
        assert len(units) == min(n, mask.sum())
        assert [a for a, _ in units] == sorted(a for a, _ in units)


# --- _prefix_lengths ---------------------------------------------------------------------


def test_prefix_lengths_try_the_predicted_length_and_its_multiples():
    # 12 units of cost 1/8 in a slack of 3/4: 6 fit. Tried: 6 x (0.25, 0.5, 0.7, 1, 1.4,
    # 2, 4) = 1.5, 3, 4.2, 6, 8.4, 12, 24, rounded and kept within [2, 12], and all 12
    assert _prefix_lengths(np.full(12, 0.125), 0.75) == [12, 8, 6, 4, 3, 2]


def test_a_prefix_that_uses_the_slack_exactly_is_predicted_to_fit():
    # costs summing to exactly the slack leave slack 0, which still holds: 2 fit, so
    # 2 x (..., 1.4, ...) = 2.8 -> 3 is tried too
    assert _prefix_lengths(np.full(4, 0.25), 0.5) == [4, 3, 2]
    # nothing fits: the prediction is the one unit known to hold alone
    assert _prefix_lengths(np.full(4, 1.0), 0.5) == [4, 2]


# --- _shrink -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "threshold", "margin", "ratio"),
    [(W, 3 * W, 0.0, 0.0), (W, 2 * W, W, 0.0), (4 * W, -4 * W, 0.0, 0.625)],
)
def test_one_round_removes_as_many_units_as_the_slack_has_room_for(
    weight, threshold, margin, ratio
):
    # 8 bins of one weight; the full mask's slack has room for exactly 5 of them (slack
    # 0 still holds). Plain: slack 8 - 3 = 5 weights. With a margin of one weight:
    # 8 - 2 - 1 = 5. With a ratio, p must stay >= 0.625 sigma: p = 0.5 + (8 + 1) / 32
    # on the full mask; less 5 bins, 0.5 + 4 / 32 = 0.625. Round one removes the predicted 5
    # together (the lowest, all being equal); round two finds no bin removable alone.
    ctx = context(additive([weight] * 8, threshold), decision_margin=margin)
    prop = Property("sufficient", ratio, needs_inverse=False)
    bins, share = shrink(ctx, prop, mask_of(*range(8)), n_units=8, rounds=2)
    assert bins == [5, 6, 7]
    assert share.tolist() == [0.0]
    assert set(ctx.oracle.by_phase) == {"shrink"}  # every query counted under its phase
    assert holds(ctx, prop, bins)


def test_a_single_round_removes_and_reports_the_share_it_found():
    # one round: every single bin is removable (slack 5 - 1), so the round reports 1.0,
    # and removes the 5 the slack has room for
    ctx = context(additive([W] * 8, 3 * W))
    bins, share = shrink(ctx, SUFFICIENT, mask_of(*range(8)), n_units=8, rounds=1)
    assert bins == [5, 6, 7]
    assert share.tolist() == [1.0]


def test_units_leaving_most_slack_go_first_and_equal_slacks_lowest_first():
    # even bins cost 1, odd bins 2; slack 3. Cheapest first, and among equals the lowest
    # (a stable order, the same on every machine): bins 0, 2, 4 go, using the slack
    # exactly. Any other order of the even bins, or the odd ones first, keeps others.
    ctx = context(additive([W, 2 * W] * 4, 9 * W))
    bins, share = shrink(ctx, SUFFICIENT, mask_of(*range(8)), n_units=8, rounds=2)
    assert bins == [1, 3, 5, 6, 7]
    assert share.tolist() == [0.0]


def test_for_completeness_the_order_counts_the_complements_slack_too():
    # Bins 0-3 weigh 3, 1, 1, 1 (units of 2/64), threshold 3: the mask must keep weight
    # >= 3 and its complement hold <= 3 (the rest weigh 0). Removing a light bin leaves
    # mask slack (6 - 1 - 3) / 2 = 1 and complement slack 3 - 1 = 2; removing bin 0
    # leaves 0 and 0. Lights first: 1, 2, 3 go together (removed weight 3), leaving {0}.
    # (Were the complement's slack taken with the wrong sign, bin 0 would go first, and
    # no light bin could follow it.)
    ctx = context(additive([6 * W, 2 * W, 2 * W, 2 * W], 6 * W))
    bins, share = shrink(ctx, COMPLETE, mask_of(0, 1, 2, 3), n_units=4, rounds=2)
    assert bins == [0]
    assert share.tolist() == [0.0]


def test_a_lone_removable_unit_is_removed_and_no_bin_is_added():
    # kept bins 1, 3, 5 | 8, 10, 12 in two units spanning [1, 6) and [8, 13) (with gaps);
    # the class needs 8 and 12. Only the first unit is removable, and removing it must
    # not fill the gaps. Round two: [8, 10] and [12] each hold a needed bin; round three
    # has nothing left to test and returns the last share, 0.
    ctx = context(needs(8, 12))
    bins, share = shrink(ctx, SUFFICIENT, mask_of(1, 3, 5, 8, 10, 12), n_units=2, rounds=3)
    assert bins == [8, 10, 12]
    assert share.tolist() == [0.0]


def test_the_complete_property_asks_a_complement_only_where_its_mask_passed():
    # The target needs 2 of bins 0-3 held, so the mask must hold 3 of them for its
    # complement to reject (hold at most 1). Each single bin is removable; two together
    # leave the complement 2 and are not. Round one: the lowest bin goes alone (the
    # removal of 4 and of 3 bins fail on the mask, of 2 on the complement); round two
    # finds no bin removable alone. The mask half decides more of the failures here
    # (2 against 1 after round one), so it is asked first throughout: every complement
    # asked is that of a mask asked before that kept the target.
    ctx = context(at_least(2, 0, 1, 2, 3))
    bins, share = shrink(ctx, COMPLETE, mask_of(0, 1, 2, 3), n_units=4, rounds=2)
    assert bins == [1, 2, 3]  # the lowest goes alone; no two more can follow
    assert share.tolist() == [0.0]
    asked = ctx.oracle.classifier.asked
    rest = set(range(4, N_VARS))
    complements = [i for i, q in enumerate(asked) if q >= rest]
    assert complements  # the complement half was asked
    for i in complements:
        mask = set(range(N_VARS)) - asked[i]
        assert mask in asked[:i] and len(mask & {0, 1, 2, 3}) >= 2


def test_after_a_certification_only_the_closest_failures_are_screened_before_the_next():
    # Kept among bins 0-3 (tried in that order), the target wins for {0, 1, 2, 3},
    # {0, 1, 3}, {1, 3} and {3} only. Elimination: 0, 1 stay, 2 goes, 3 stays. The
    # certification of {0, 1, 3} finds 0 removable ({1, 3}) and 1, 3 not; both fail by
    # the same slack, so the closest quarter is bin 1, the lowest. 0 goes; screening
    # asks only whether 1 can go now ({3}: yes), and it goes; the full certification of
    # {3} then finds nothing. A full certification of {1, 3} (asking {1} too) is never
    # needed: the model is asked about these 8 masks only.
    passing = [{0, 1, 2, 3}, {0, 1, 3}, {1, 3}, {3}]
    codes = torch.tensor([sum(2**b for b in p) for p in passing])

    def rule(held: torch.Tensor) -> torch.Tensor:
        code = held[:, :4].long() @ torch.tensor([1, 2, 4, 8])
        return torch.where(torch.isin(code, codes), 0.75, 0.25)

    ctx = context(rule)
    bins, share = one_by_one(ctx, SUFFICIENT, mask_of(0, 1, 2, 3), by_bin())
    assert bins == [3]
    assert share.tolist() == [0.0]
    low = [q & {0, 1, 2, 3} for q in ctx.oracle.classifier.asked]
    assert low == [{1, 2, 3}, {0, 2, 3}, {0, 1, 3}, {0, 1}, {1, 3}, {0, 3}, {3}, set()]
