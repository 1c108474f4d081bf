"""Sufficient and delta-complete search: grow in responsibility order, then minimise.

*Growth.* Variables are ranked by responsibility (ties: larger magnitude first); the
candidate masks are prefixes of that ranking. Round one evaluates `grid_size` prefix
sizes spaced geometrically from 1 to all variables in one batch; each later round
evaluates `grid_size` sizes spaced linearly between the largest failing and the
smallest passing size found so far. The result is the smallest passing size seen.

*Minimisation.* Group testing from coarse to fine: the mask's kept variables are cut
into `minimise_units` groups of consecutive kept variables ("units"), then into four
times as many, and so on while a unit holds more than four variables. At each level a
round tests every single-unit removal in one batch, then removes as many of the
removable units together as still hold: ordered by the slack their single removal
leaves (most first; `verdict.slack`), with the slacks' drop summed to predict how
long a prefix may go, prefixes around that length are tried in one batch and the
longest that holds is taken. Then single variables: elimination in ascending
responsibility (ties: ascending magnitude), in chunks that double while removals hold,
and certification rounds that test every single removal of the result until none holds
(`certify_rounds` at most). This makes the mask *1-minimal per variable* (per bin where
a variable is one bin): no kept variable can be dropped alone with the property holding.
The reported figure is the share of kept variables that the last certification found
removable (0.0 for a 1-minimal mask; more only if the rounds ran out). A mask of more
than `per_bin_limit` variables skips the per-variable level; its figure is measured on a
seeded sample of `PER_BIN_SAMPLE` of its variables instead.

Every search is a generator (`Search`): it yields `(MaskRequests, phase)` and is sent
the probabilities back, so `drive` can run independent searches (the sufficient and the
complete one) side by side, their mutants sharing the same model batches. The oracle
answers a (clip, mask) pair asked twice from what it has, so searches may overlap freely.

A *property* is sufficiency (keeps c, p[c] >= sufficient_confidence * sigma) or
delta-completeness (keeps c with p[c] >= delta * sigma, and the complement rejects c).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from sigwarehouse.freqrex.oracle import Intervals, MaskRequests, Oracle
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.freqrex.verdict import keeps, rejects, slack

# a search step: yields (requests, phase), is sent their probabilities, returns a result
Search = Generator[tuple[MaskRequests, str], torch.Tensor, Any]


def drive(oracle: Oracle, searches: list[Search]) -> list:
    """Run searches side by side; each round, all their pending requests go to the oracle
    as one stream. Returns each search's result, in order."""
    results: list = [None] * len(searches)
    pending: dict[int, tuple[MaskRequests, str]] = {}

    def advance(i: int, value) -> None:
        try:
            pending[i] = searches[i].send(value)
        except StopIteration as done:
            results[i] = done.value

    for i in range(len(searches)):
        advance(i, None)
    while pending:
        keys = sorted(pending)
        outs = oracle.run_many([pending.pop(k) for k in keys])
        for k, out in zip(keys, outs, strict=True):
            advance(k, out)
    return results


@dataclass(frozen=True)
class Property:
    """What a mask must satisfy; `needs_inverse` doubles each test with the complement."""

    name: str
    min_ratio: float  # p[c] >= min_ratio * sigma on the mask (0: top-1 only)
    needs_inverse: bool  # the complement must reject c (delta-completeness)


def sufficient_property(params: FreqrexParams) -> Property:
    return Property("sufficient", params.sufficient_confidence, needs_inverse=False)


def complete_property(params: FreqrexParams) -> Property:
    return Property("complete", params.delta, needs_inverse=True)


# Slacks only order candidates. They are rounded to this many decimals first, so that
# the last-bit differences a model's output shows between batch compositions do not
# reorder near-equal candidates (equal slacks keep their variable order).
SLACK_DECIMALS = 6


@dataclass
class Context:
    """What every search step needs about the clips: the oracle, and per oracle row the
    target class, the original confidence sigma and the clip's RNG entropy (its seed and
    a hash of its samples: what a clip draws never depends on its batch)."""

    oracle: Oracle
    target: np.ndarray
    sigma: np.ndarray
    params: FreqrexParams
    seeds: list[list[int]]

    def __post_init__(self) -> None:
        # per oracle row: how often each half of a delta-completeness test decided a
        # failure, [mask half, inverse half]; the likelier one is asked first
        self.half_fails = np.zeros((len(self.target), 2), dtype=np.int64)

    @cached_property
    def magnitude(self) -> np.ndarray:
        """(n_clips, width) each variable's magnitude order key, on the host."""
        return self.oracle.magnitude().cpu().numpy()

    def holds(
        self, prop: Property, clip: np.ndarray, phase: str, with_slack: bool = False,
        **mask_spec,
    ) -> Search:  # fmt: skip
        """Search step returning a bool per request: does the mask satisfy prop?

        For delta-completeness a test has two halves, the mask and its complement, and
        the second is asked only for requests that pass the first. Which half goes first
        is decided per clip: the one that has decided more of that clip's failures so far
        (the mask half on a tie), so a failing test usually costs one query. That history
        is the clip's own, so the order never depends on which clips share a batch. With
        `with_slack` it returns (ok, slack): slack is the smallest margin of the halves
        queried (see verdict.slack), for ordering candidates."""
        margin, ratio = self.params.decision_margin, prop.min_ratio
        target, sigma = self.target, self.sigma
        n = len(clip)
        ok = np.ones(n, dtype=bool)
        room = np.full(n, np.inf)
        if prop.needs_inverse:
            fails = self.half_fails[clip]
            inverse_first = fails[:, 1] > fails[:, 0]
            stages = [inverse_first, ~inverse_first]
        else:
            stages = [np.zeros(n, dtype=bool)]
        for invert in stages:
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                break
            sub = {k: _take(v, idx) for k, v in mask_spec.items()}
            inv = invert[idx]
            probs = yield MaskRequests(clip[idx], invert=inv, **sub), phase
            rows = clip[idx]
            kept = keeps(probs, target[rows], sigma[rows], margin, ratio)
            gone = rejects(probs, target[rows], margin)
            passed = np.where(inv, gone, kept)
            half_room = np.where(
                inv,
                slack(probs, target[rows], sigma[rows], margin, reject=True),
                slack(probs, target[rows], sigma[rows], margin, ratio),
            )
            ok[idx] = passed
            room[idx] = np.minimum(room[idx], np.round(half_room, SLACK_DECIMALS))
            if prop.needs_inverse:
                np.add.at(self.half_fails, (rows[~passed], inv[~passed].astype(np.int64)), 1)
        return (ok, room) if with_slack else ok


def _take(value, idx: np.ndarray):
    """The per-request part of a mask spec for requests idx (per-clip tensors shared)."""
    if isinstance(value, np.ndarray):  # sizes, base_row
        return value[idx]
    if isinstance(value, Intervals):
        return value.take(idx)
    return value  # rank, base


def rank_positions(
    responsibility: np.ndarray,
    magnitude: torch.Tensor,
    allowed: np.ndarray | None = None,
) -> torch.Tensor:
    """Int tensor (n_clips, n_vars) on magnitude's device: each variable's position in
    descending responsibility (ties: descending magnitude); disallowed variables last."""
    device = magnitude.device
    resp = torch.as_tensor(responsibility, device=device, dtype=torch.float32)
    if allowed is not None:
        resp = torch.where(torch.as_tensor(allowed, device=device), resp, -torch.inf)
    order = torch.sort(magnitude.float(), dim=1, descending=True, stable=True).indices
    by_resp = torch.sort(resp.gather(1, order), dim=1, descending=True, stable=True).indices
    order = order.gather(1, by_resp)
    positions = torch.empty_like(order, dtype=torch.int32)
    ranks = torch.arange(order.shape[1], device=device, dtype=torch.int32)
    positions.scatter_(1, order, ranks.expand_as(order).contiguous())
    return positions


def grow(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    rank: torch.Tensor,
    limit: np.ndarray,
    phase: str,
    base: torch.Tensor | None = None,
) -> Search:
    """Search returning the smallest passing prefix size per clip (-1: none passed).

    limit[k] is the largest prefix clips[k] may use (its number of allowed variables).
    `base` (n_clips, width) on the device, if given: variables every candidate keeps
    besides its prefix.
    """
    with_base = {} if base is None else {"base": base}
    g = ctx.params.grid_size
    lo = np.zeros(len(clips), dtype=np.int64)  # largest size known to fail (0: empty)
    best = np.full(len(clips), -1, dtype=np.int64)
    for rnd in range(ctx.params.grid_rounds):
        req_clip, req_size, owner = [], [], []
        for k, clip in enumerate(clips):
            if rnd == 0:
                grid = np.geomspace(1, max(1, limit[k]), g)
            elif best[k] > lo[k] + 1:
                grid = np.linspace(lo[k], best[k], g + 2)[1:-1]
            else:
                continue
            sizes = np.unique(np.clip(np.round(grid).astype(np.int64), 1, limit[k]))
            sizes = sizes[(sizes > lo[k]) & ((best[k] < 0) | (sizes < best[k]))]
            req_clip += [clip] * len(sizes)
            req_size += sizes.tolist()
            owner += [k] * len(sizes)
        if not req_clip:
            break
        clip_arr = np.asarray(req_clip, dtype=np.int64)
        size_arr = np.asarray(req_size, dtype=np.int64)
        ok = yield from ctx.holds(prop, clip_arr, phase, rank=rank, sizes=size_arr, **with_base)
        owner_arr = np.asarray(owner)
        for k in np.unique(owner_arr):
            sel = owner_arr == k
            sizes, passed = size_arr[sel], ok[sel]
            if passed.any():
                first = int(np.argmax(passed))
                best[k] = sizes[first]
                if first > 0:
                    lo[k] = max(lo[k], sizes[first - 1])
            else:  # every size asked failed: the bracket starts above them
                lo[k] = max(lo[k], sizes.max())
    return best


PER_BIN_SAMPLE = 64  # kept variables tested alone on a mask above per_bin_limit


def _units(mask: np.ndarray, n_units: int) -> list[tuple[int, int]]:
    """Cut the kept variables of a 1-D mask into <= n_units groups of consecutive kept
    variables; each as the [first, last + 1) interval that spans it."""
    kept = np.flatnonzero(mask)
    if kept.size == 0:
        return []
    groups = np.array_split(kept, min(n_units, kept.size))
    return [(int(gr[0]), int(gr[-1]) + 1) for gr in groups]


def minimise(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    masks: np.ndarray,
    responsibility: np.ndarray,
    phase: str,
) -> Search:
    """Search that shrinks masks (len(clips), n_vars) bool while prop holds.

    Returns (masks, removable, checked): removable[k] is the share of the final mask's
    kept variables whose single removal keeps prop (0.0: 1-minimal per variable),
    measured over checked[k] variables (all of them, or a sample above per_bin_limit).
    Every returned mask passed prop when last evaluated (the input masks must pass it).
    """
    p = ctx.params
    masks = masks.copy()
    n_units = p.minimise_units
    # a level pays while its units hold several variables; below, per-variable is cheaper.
    # From the second level on, a mask still over twice per_bin_limit after a level that
    # removed less than half of it stops there: each finer level costs about a query per
    # unit and round, and the mask would most likely end above per_bin_limit anyway,
    # with a sampled figure (see the module doc)
    going = np.ones(len(clips), dtype=bool)
    while (coarse := np.flatnonzero(going & (masks.sum(axis=1) > 4 * n_units))).size:
        before = masks[coarse].sum(axis=1)
        yield from _shrink(ctx, prop, clips, masks, coarse, n_units, p.minimise_rounds, phase)
        after = masks[coarse].sum(axis=1)
        if n_units > p.minimise_units:
            going[coarse] = (after <= 2 * p.per_bin_limit) | (2 * after <= before)
        n_units *= 4
    sizes = masks.sum(axis=1)
    removable = np.zeros(len(clips))
    small = np.flatnonzero(sizes <= p.per_bin_limit)
    removable[small] = yield from _one_by_one(ctx, prop, clips, masks, responsibility, small, phase)
    checked = masks.sum(axis=1)  # the last round tested every kept variable alone
    large = np.flatnonzero(sizes > p.per_bin_limit)
    if large.size:
        drops = []
        for k in large:
            rng = np.random.default_rng([*ctx.seeds[int(clips[k])], int(sizes[k])])
            picked = np.sort(rng.choice(np.flatnonzero(masks[k]), PER_BIN_SAMPLE, replace=False))
            drops += [[(int(v), int(v) + 1)] for v in picked]
        owner = np.repeat(large, PER_BIN_SAMPLE)
        ok = yield from ctx.holds(
            prop, clips[owner], phase, base=base_masks(ctx, clips[large], masks[large]),
            drop=Intervals.from_lists(drops),
        )  # fmt: skip
        removable[large] = ok.reshape(len(large), PER_BIN_SAMPLE).mean(axis=1)
        checked[large] = PER_BIN_SAMPLE
    return masks, removable, checked


# tried prefix lengths, as multiples of the length the slacks predict (at least 2)
PREFIX_FACTORS = (0.25, 0.5, 0.7, 1.0, 1.4, 2.0, 4.0)


def _shrink(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    masks: np.ndarray,
    sel: np.ndarray,
    n_units: int,
    rounds: int,
    phase: str,
) -> Search:
    """Group-testing rounds at one granularity on masks[sel] (changed in place).

    A round tests every single-unit removal in one batch, together with the mask itself
    (for its slack; already known to the oracle, so free). If some units are removable
    alone, the round ends by removing as many of them together as still hold: they are
    ordered by the slack their single removal leaves (most first), the slacks' drop is
    summed to predict how long a prefix can go, and prefixes around that length (and
    all of them) are tried in one batch; the longest that holds is removed (at least
    the first unit, known to hold alone). Rounds repeat until a round finds nothing
    removable or `rounds` rounds removed something (single variables are left to
    _one_by_one, which certifies what is left). Returns per entry of sel the share of
    units that its last round's tests found removable alone (before that round's
    removals; 0.0 when that round found none)."""
    share = np.zeros(len(sel))
    todo = np.arange(len(sel))
    for _ in range(rounds):
        units = {int(k): _units(masks[sel[k]], n_units) for k in todo}
        todo = np.asarray([k for k in todo if units[int(k)]], dtype=np.int64)
        if todo.size == 0:
            break
        owner = np.concatenate([[k] * (len(units[int(k)]) + 1) for k in todo]).astype(np.int64)
        drops = [d for k in todo for d in [[]] + [[u] for u in units[int(k)]]]
        rows = sel[todo]
        ok, room = yield from ctx.holds(
            prop, clips[sel[owner]], phase, with_slack=True,
            base=base_masks(ctx, clips[rows], masks[rows]), drop=Intervals.from_lists(drops),
        )  # fmt: skip
        next_todo, cum_owner, cum_drops = [], [], []
        for k in todo:
            row, its_units = sel[k], units[int(k)]
            mine = np.flatnonzero(owner == k)
            own_room, alone_ok, alone_room = room[mine[0]], ok[mine[1:]], room[mine[1:]]
            share[k] = alone_ok.mean()
            if not alone_ok.any():
                continue
            idx = np.flatnonzero(alone_ok)
            idx = idx[np.argsort(-alone_room[idx], kind="stable")]
            a, b = its_units[idx[0]]  # known to hold alone
            masks[row, a:b] = False
            for j in _prefix_lengths(own_room - alone_room[idx], own_room):
                cum_owner.append(k)
                cum_drops.append([its_units[i] for i in idx[:j]])
            next_todo.append(k)
        if cum_owner:
            cum_owner_arr = np.asarray(cum_owner, dtype=np.int64)
            rows = sel[np.asarray(next_todo, dtype=np.int64)]
            ok = yield from ctx.holds(
                prop, clips[sel[cum_owner_arr]], phase,
                base=base_masks(ctx, clips[rows], masks[rows]),
                drop=Intervals.from_lists(cum_drops),
            )  # fmt: skip
            for k in np.unique(cum_owner_arr):
                tried = np.flatnonzero(cum_owner_arr == k)
                passing = tried[ok[tried]]
                if passing.size:  # the longest prefix that holds (tried longest first)
                    for a, b in cum_drops[passing[0]]:
                        masks[sel[k], a:b] = False
        todo = np.asarray(next_todo, dtype=np.int64)
    return share


def _prefix_lengths(cost: np.ndarray, room: float) -> list[int]:
    """Prefix lengths (descending, each >= 2) to try removing together, given each
    removable unit's slack cost alone (in removal order) and the mask's slack: around
    the longest prefix whose summed costs fit in the slack, and all of them."""
    n = len(cost)
    fits = np.flatnonzero(np.cumsum(cost) <= room)
    predicted = int(fits[-1]) + 1 if fits.size else 1
    lengths = {n} | {int(round(predicted * f)) for f in PREFIX_FACTORS}
    return sorted((j for j in lengths if 2 <= j <= n), reverse=True)


CHUNK_MAX = 64  # the most variables one elimination step tries to remove together


SCREEN_SHARE = 0.25  # of the failing variables, those closest to removable are screened


def _one_by_one(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    masks: np.ndarray,
    responsibility: np.ndarray,
    sel: np.ndarray,
    phase: str,
) -> Search:
    """Make masks[sel] 1-minimal per variable (changed in place).

    Elimination in chunks: each clip walks its kept variables in ascending
    responsibility (ties, often at 0: ascending magnitude) and tries to remove the next
    `chunk` of them together. If the mask without them holds, they go and the chunk
    doubles (up to CHUNK_MAX); if not, the chunk halves, and a single variable whose
    removal fails stays (the chunk starts again at 1). A run of r removable variables so
    costs about log2(r) tests instead of r, and every removal is a tested mask. Since
    the property need not be monotone, a certification round then tests every single
    removal of the result at once; what it finds removable is eliminated again in the
    same way (all of it tried together first). A removal can make other variables
    removable, mostly those whose removal came closest to holding (the least negative
    slack), so before certifying again in full, only those (the SCREEN_SHARE of the
    failing ones with most slack) are tested again, and what they show removable is
    eliminated, until they show none. Then the next full certification, up to
    `certify_rounds` in all. Returns per entry of sel the share of kept variables the
    last full certification found removable (0.0: 1-minimal). Each clip's steps depend
    on its own answers only."""
    share = np.zeros(len(sel))
    queue, chunk = {}, {}
    magnitude = ctx.magnitude
    for k in range(len(sel)):
        row = clips[sel[k]]
        kept = np.flatnonzero(masks[sel[k]])
        # many variables share a responsibility (often 0): the weaker first among them
        queue[k] = list(kept[np.lexsort((magnitude[row, kept], responsibility[row, kept]))])
        chunk[k] = 1
    near: dict[int, np.ndarray] = {}
    for _ in range(ctx.params.certify_rounds):
        while True:
            yield from _eliminate(ctx, prop, clips, masks, sel, queue, chunk, phase)
            screen = {k: v[masks[sel[k], v]] for k, v in near.items()}
            screen = {k: v for k, v in screen.items() if v.size}
            if not screen:
                break
            ok, _ = yield from _singles(ctx, prop, clips, masks, sel, screen, phase)
            for k, found in ok.items():
                queue[k] = list(screen[k][found])
                chunk[k] = max(1, len(queue[k]))
            near = {k: screen[k] for k in screen if queue[k]}
        ks = [k for k in range(len(sel)) if masks[sel[k]].any()]
        if not ks:
            break
        units = {k: np.flatnonzero(masks[sel[k]]) for k in ks}
        ok, room = yield from _singles(ctx, prop, clips, masks, sel, units, phase)
        near = {}
        for k in ks:
            share[k] = ok[k].mean()
            queue[k] = list(units[k][ok[k]])
            chunk[k] = max(1, len(queue[k]))
            failing = np.flatnonzero(~ok[k])
            if queue[k] and failing.size:
                closest = failing[np.argsort(-room[k][failing], kind="stable")]
                near[k] = units[k][closest[: max(1, int(SCREEN_SHARE * failing.size))]]
        if not any(queue.values()):
            break
    return share


def _eliminate(ctx, prop, clips, masks, sel, queue, chunk, phase) -> Search:
    """_one_by_one's chunked elimination of each queue[k] (all changed in place)."""
    while waiting := [k for k in queue if queue[k]]:
        tried = {k: queue[k][: chunk[k]] for k in waiting}
        rows = sel[np.asarray(waiting)]
        ok = yield from ctx.holds(
            prop, clips[rows], phase, base=base_masks(ctx, clips[rows], masks[rows]),
            drop=Intervals.from_lists([[(int(b), int(b) + 1) for b in tried[k]]
                                       for k in waiting]),
        )  # fmt: skip
        for k, passed in zip(waiting, ok, strict=True):
            if passed:
                masks[sel[k], tried[k]] = False
                del queue[k][: len(tried[k])]
                chunk[k] = min(2 * chunk[k], CHUNK_MAX)
            elif len(tried[k]) == 1:
                del queue[k][:1]  # needed, as far as this mask goes
                chunk[k] = 1
            else:
                chunk[k] = len(tried[k]) // 2


def _singles(ctx, prop, clips, masks, sel, variables: dict, phase) -> Search:
    """Test removing each of variables[k] alone from masks[sel[k]], all in one batch;
    returns ({k: ok per variable}, {k: slack per variable})."""
    ks = list(variables)
    owner = np.concatenate([[k] * len(variables[k]) for k in ks]).astype(np.int64)
    rows = sel[np.asarray(ks)]
    ok, room = yield from ctx.holds(
        prop, clips[sel[owner]], phase, with_slack=True,
        base=base_masks(ctx, clips[rows], masks[rows]),
        drop=Intervals.from_lists([[(int(b), int(b) + 1)] for k in ks for b in variables[k]]),
    )  # fmt: skip
    return {k: ok[owner == k] for k in ks}, {k: room[owner == k] for k in ks}


def base_masks(ctx: Context, clips: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    """Per-oracle-row base masks on the device: masks[k] at row clips[k] (rows unique)."""
    base = np.zeros((ctx.oracle.n_clips, masks.shape[1]), dtype=bool)
    base[clips] = masks
    return torch.as_tensor(base, device=ctx.oracle.device)
