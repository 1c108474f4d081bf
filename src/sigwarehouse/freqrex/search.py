"""Sufficient and delta-complete search: grow in responsibility order, then minimise.

*Growth.* Variables are ranked by responsibility (ties: larger magnitude first); the
candidate masks are prefixes of that ranking. Round one evaluates `grid_size` prefix
sizes spaced geometrically from 1 to all variables in one batch; each later round
evaluates `grid_size` sizes spaced linearly between the largest failing and the
smallest passing size found so far. The result is the smallest passing size seen.

*Minimisation.* Group testing from coarse to fine: the mask's kept variables are cut
into `minimise_units` groups of consecutive kept variables ("units"), then into four
times as many, then into single variables (bins). At each level a round tests every
single-unit removal in one batch; then, in ascending responsibility, it removes as many
of the removable units together as still hold (prefixes of halving length, all in one
batch); rounds repeat until no single unit can be removed. The last level makes the mask
*1-minimal per bin*: no kept variable can be dropped alone with the property holding.
The reported figure is the share of kept variables that the final single-variable test
found removable (0.0 for a 1-minimal mask; more only if `minimise_rounds` ran out). A
mask of more than `per_bin_limit` variables skips the per-variable level; its figure is
measured on a seeded sample of `PER_BIN_SAMPLE` of its variables instead.

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
from typing import Any

import numpy as np
import torch

from sigwarehouse.freqrex.oracle import Intervals, MaskRequests, Oracle
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.freqrex.verdict import keeps, rejects

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


@dataclass
class Context:
    """What every search step needs about the clips: the oracle, and per oracle row the
    target class and the original confidence sigma."""

    oracle: Oracle
    target: np.ndarray
    sigma: np.ndarray
    params: FreqrexParams

    def holds(
        self, prop: Property, clip: np.ndarray, phase: str, inverse_first: bool = False,
        **mask_spec,
    ) -> Search:  # fmt: skip
        """Search step returning a bool per request: does the mask satisfy prop?

        For delta-completeness the second half is queried only for masks that pass the
        first (by default the mask itself; `inverse_first` asks the complement first,
        which fails more often when a bin is taken from a nearly minimal mask)."""
        margin = self.params.decision_margin
        target, sigma = self.target, self.sigma

        def mask_ok(probs, rows):
            return keeps(probs, target[rows], sigma[rows], margin, prop.min_ratio)

        def inverse_ok(probs, rows):
            return rejects(probs, target[rows], margin)

        halves = [(False, mask_ok), (True, inverse_ok)] if prop.needs_inverse else [
            (False, mask_ok)]  # fmt: skip
        if inverse_first:
            halves.reverse()
        ok = np.ones(len(clip), dtype=bool)
        for invert, test in halves:
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                break
            sub = {k: _take(v, idx) for k, v in mask_spec.items()}
            probs = yield MaskRequests(clip[idx], invert=np.full(len(idx), invert), **sub), phase
            ok[idx] = test(probs, clip[idx])
        return ok


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
) -> Search:
    """Search returning the smallest passing prefix size per clip (-1: none passed).

    limit[k] is the largest prefix clips[k] may use (its number of allowed variables).
    """
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
        ok = yield from ctx.holds(prop, clip_arr, phase, rank=rank, sizes=size_arr)
        owner_arr = np.asarray(owner)
        for k in np.unique(owner_arr):
            sel = owner_arr == k
            sizes, passed = size_arr[sel], ok[sel]
            if passed.any():
                first = int(np.argmax(passed))
                best[k] = sizes[first]
                if first > 0:
                    lo[k] = max(lo[k], sizes[first - 1])
            elif best[k] < 0:
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


def _halvings(n: int) -> list[int]:
    """n, n/2, n/4, ... down to 2 (distinct, descending): prefix lengths to try."""
    out = []
    while n >= 2:
        if not out or n < out[-1]:
            out.append(n)
        n //= 2
    return out


def minimise(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    masks: np.ndarray,
    responsibility: np.ndarray,
    phase: str,
) -> Search:
    """Search that shrinks masks (len(clips), n_vars) bool while prop holds.

    `responsibility` is indexed by oracle row. Returns (masks, removable, checked):
    removable[k] is the share of the final mask's kept variables whose single removal
    keeps prop (0.0: 1-minimal per variable), measured over checked[k] variables (all
    of them, or a sample above per_bin_limit). Every returned mask passed prop when
    last evaluated (the input masks must pass it too).
    """
    p = ctx.params
    masks = masks.copy()
    for n_units in (p.minimise_units, 4 * p.minimise_units):
        # a level pays when its units hold several variables; else per-variable is cheaper
        coarse = np.flatnonzero(masks.sum(axis=1) > 4 * n_units)
        yield from _shrink(ctx, prop, clips, masks, responsibility, coarse, n_units, phase)
    sizes = masks.sum(axis=1)
    removable = np.zeros(len(clips))
    small = np.flatnonzero(sizes <= p.per_bin_limit)
    removable[small] = yield from _one_by_one(ctx, prop, clips, masks, responsibility, small, phase)
    checked = masks.sum(axis=1)  # every kept bin of the final mask was tested alone
    large = np.flatnonzero(sizes > p.per_bin_limit)
    if large.size:
        drops = []
        for k in large:
            rng = np.random.default_rng([p.seed, int(clips[k]), int(sizes[k])])
            picked = np.sort(rng.choice(np.flatnonzero(masks[k]), PER_BIN_SAMPLE, replace=False))
            drops += [[(int(v), int(v) + 1)] for v in picked]
        owner = np.repeat(large, PER_BIN_SAMPLE)
        ok = yield from ctx.holds(
            prop, clips[owner], phase, base=_base(ctx, clips[large], masks[large]),
            drop=Intervals.from_lists(drops),
        )  # fmt: skip
        removable[large] = ok.reshape(len(large), PER_BIN_SAMPLE).mean(axis=1)
        checked[large] = PER_BIN_SAMPLE
    return masks, removable, checked


def _shrink(
    ctx: Context,
    prop: Property,
    clips: np.ndarray,
    masks: np.ndarray,
    responsibility: np.ndarray,
    sel: np.ndarray,
    n_units: int,
    phase: str,
) -> Search:
    """Group-testing rounds at one granularity on masks[sel] (changed in place).

    Returns per entry of sel the share of units the last single-unit test found
    removable (0.0 when a round found none, which ends that mask's rounds)."""
    share = np.zeros(len(sel))
    todo = np.arange(len(sel))
    last = ctx.params.minimise_rounds - 1
    for rnd in range(ctx.params.minimise_rounds):
        units = {int(k): _units(masks[sel[k]], n_units) for k in todo}
        todo = np.asarray([k for k in todo if units[int(k)]], dtype=np.int64)
        if todo.size == 0:
            break
        owner = np.concatenate([[k] * len(units[int(k)]) for k in todo]).astype(np.int64)
        drops = [[u] for k in todo for u in units[int(k)]]
        rows = sel[todo]
        ok = yield from ctx.holds(
            prop, clips[sel[owner]], phase, base=_base(ctx, clips[rows], masks[rows]),
            drop=Intervals.from_lists(drops),
        )  # fmt: skip
        next_todo, cum_owner, cum_drops = [], [], []
        for k in todo:
            row, its_units = sel[k], units[int(k)]
            removable_here = ok[owner == k]
            share[k] = removable_here.mean()
            if not removable_here.any() or rnd == last:
                continue
            idx = np.flatnonzero(removable_here)
            clip_resp = responsibility[clips[row]]
            unit_resp = [clip_resp[a:b][masks[row, a:b]].mean() for a, b in its_units]
            idx = idx[np.argsort([unit_resp[i] for i in idx], kind="stable")]
            # the first removal alone is known to hold; try longer prefixes, halving
            a, b = its_units[idx[0]]
            masks[row, a:b] = False
            for j in _halvings(len(idx)):
                cum_owner.append(k)
                cum_drops.append([its_units[i] for i in idx[:j]])
            next_todo.append(k)
        if cum_owner:
            cum_owner_arr = np.asarray(cum_owner, dtype=np.int64)
            rows = sel[np.asarray(next_todo, dtype=np.int64)]
            ok = yield from ctx.holds(
                prop, clips[sel[cum_owner_arr]], phase,
                base=_base(ctx, clips[rows], masks[rows]), drop=Intervals.from_lists(cum_drops),
            )  # fmt: skip
            for k in np.unique(cum_owner_arr):
                tried = np.flatnonzero(cum_owner_arr == k)
                passing = tried[ok[tried]]
                if passing.size:  # the longest prefix that holds (tried longest first)
                    for a, b in cum_drops[passing[0]]:
                        masks[sel[k], a:b] = False
        todo = np.asarray(next_todo, dtype=np.int64)
    return share


SPECULATE_MAX = 64  # the most single removals one clip tests ahead in one request batch


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

    Sequential elimination: each kept variable, in ascending responsibility, is dropped
    if the mask without it still holds. To need fewer round trips it speculates: a clip
    tests its next `ahead` variables' removals against its current mask at once, keeps
    those before the first that holds, drops that one, and forgets the rest (they are
    tested again against the smaller mask); `ahead` doubles after a batch with no
    removal, and after a removal becomes the length of the failing run before it. The
    result is exactly that of testing one variable at a time. Since the property need
    not be monotone, a certification round then tests every single removal of the
    final mask at once; what it finds removable is eliminated again, up to
    `certify_rounds` certifications in all. Returns per entry of sel the share of kept
    variables the last certification found removable (0.0: 1-minimal)."""
    inverse_first = prop.needs_inverse  # near minimality the complement fails more often
    share = np.zeros(len(sel))
    queue, ahead = {}, {}
    for k in range(len(sel)):
        kept = np.flatnonzero(masks[sel[k]])
        queue[k] = list(kept[np.argsort(responsibility[clips[sel[k]], kept], kind="stable")])
        ahead[k] = 1
    for _ in range(ctx.params.certify_rounds):
        while waiting := [k for k in queue if queue[k]]:
            tried = {k: queue[k][: ahead[k]] for k in waiting}
            owner = np.asarray([k for k in waiting for _ in tried[k]], dtype=np.int64)
            rows = sel[np.asarray(waiting)]
            ok = yield from ctx.holds(
                prop, clips[sel[owner]], phase, inverse_first,
                base=_base(ctx, clips[rows], masks[rows]),
                drop=Intervals.from_lists([[(int(b), int(b) + 1)] for k in waiting
                                           for b in tried[k]]),
            )  # fmt: skip
            for k in waiting:
                passed = np.flatnonzero(ok[owner == k])
                if passed.size:
                    j = int(passed[0])
                    masks[sel[k], tried[k][j]] = False
                    del queue[k][: j + 1]
                    ahead[k] = max(1, j)  # about the failing run just seen
                else:
                    del queue[k][: len(tried[k])]
                    ahead[k] = min(2 * ahead[k], SPECULATE_MAX)
        ks = [k for k in range(len(sel)) if masks[sel[k]].any()]
        if not ks:
            break
        units = {k: np.flatnonzero(masks[sel[k]]) for k in ks}
        owner = np.concatenate([[k] * len(units[k]) for k in ks]).astype(np.int64)
        rows = sel[np.asarray(ks)]
        ok = yield from ctx.holds(
            prop, clips[sel[owner]], phase, inverse_first,
            base=_base(ctx, clips[rows], masks[rows]),
            drop=Intervals.from_lists([[(int(b), int(b) + 1)] for k in ks for b in units[k]]),
        )  # fmt: skip
        for k in ks:
            found = ok[owner == k]
            share[k] = found.mean()
            queue[k] = list(units[k][found])
            ahead[k] = 1
        if not any(queue.values()):
            break
    return share


def _base(ctx: Context, clips: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    """Per-oracle-row base masks on the device: masks[k] at row clips[k] (rows unique)."""
    base = np.zeros((ctx.oracle.n_clips, masks.shape[1]), dtype=bool)
    base[clips] = masks
    return torch.as_tensor(base, device=ctx.oracle.device)
