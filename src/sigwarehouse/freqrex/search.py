"""Sufficient and delta-complete search: grow in responsibility order, then minimise.

*Growth.* Variables are ranked by responsibility (ties: larger magnitude first); the
candidate masks are prefixes of that ranking. Round one evaluates `grid_size` prefix
sizes spaced geometrically from 1 to all variables in one batch; each later round
evaluates `grid_size` sizes spaced linearly between the largest failing and the
smallest passing size found so far. The result is the smallest passing size seen.

*Minimisation.* The mask's kept variables are cut into at most `minimise_units` groups
of consecutive kept variables ("units"). A round tests every single-unit removal in one
batch; then, in ascending responsibility, it removes the longest run of removable units
whose cumulative removal still holds (all prefixes in one batch). After the last round,
the share of single-unit removals that *break* the property is the minimality figure
(1.0: no unit can be dropped; minimality is approximate at unit granularity).

Every search is a generator (`Search`): it yields `(MaskRequests, phase)` and is sent
the probabilities back, so `drive` can run independent searches (the sufficient and the
complete one) side by side, their mutants sharing the same model batches.

A *property* is sufficiency (keeps c, p[c] >= sufficient_confidence * sigma) or
delta-completeness (keeps c with p[c] >= delta * sigma, and the complement rejects c).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
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
    """What every search step needs about the clips: oracle rows' targets and sigmas,
    and a cache of prefix-mask probabilities (the same prefix is often asked twice,
    e.g. by the sufficient and the complete search)."""

    oracle: Oracle
    target: np.ndarray
    sigma: np.ndarray
    params: FreqrexParams
    cache: dict = field(default_factory=dict)
    ranks: dict = field(default_factory=dict)  # keeps cached ranks alive: ids stay unique

    def holds(self, prop: Property, clip: np.ndarray, phase: str, **mask_spec) -> Search:
        """Search step returning a bool per request: does the mask satisfy prop?

        For delta-completeness the complement is queried only for masks that pass the
        first half (keeping c with delta * sigma), which often halves the queries."""
        margin = self.params.decision_margin
        probs = yield from self._probs(clip, phase, mask_spec, invert=False)
        ok = keeps(probs, self.target[clip], self.sigma[clip], margin, prop.min_ratio)
        if prop.needs_inverse and ok.any():
            idx = np.flatnonzero(ok)
            sub = {k: _take(v, idx) for k, v in mask_spec.items()}
            inv = yield from self._probs(clip[idx], phase, sub, invert=True)
            ok[idx] &= rejects(inv, self.target[clip[idx]], margin)
        return ok

    def _probs(self, clip: np.ndarray, phase: str, spec: dict, invert: bool) -> Search:
        inverts = np.full(len(clip), invert)
        if set(spec) != {"rank", "sizes"}:
            return (yield MaskRequests(clip, invert=inverts, **spec), phase)
        self.ranks[id(spec["rank"])] = spec["rank"]
        pairs = zip(clip.tolist(), spec["sizes"].tolist(), strict=True)
        keys = [(id(spec["rank"]), c, s, invert) for c, s in pairs]
        todo = np.asarray([k not in self.cache for k in keys])
        if todo.any():
            new = yield (
                MaskRequests(
                    clip[todo], rank=spec["rank"], sizes=spec["sizes"][todo], invert=inverts[todo]
                ),
                phase,
            )
            for key, row in zip(
                [k for k, t in zip(keys, todo, strict=True) if t], new, strict=True
            ):
                self.cache[key] = row
        return torch.stack([self.cache[k] for k in keys])


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


def _units(mask: np.ndarray, n_units: int) -> list[tuple[int, int]]:
    """Cut the kept variables of a 1-D mask into <= n_units groups of consecutive kept
    variables; each group as the [first, last + 1) interval that spans it."""
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

    Returns (masks, minimality, n_units): minimality[k] is the share of single-unit
    removals of the final mask that break prop (nan for an empty mask), n_units[k] the
    number of units it was measured over. Every returned mask passed prop when last
    evaluated (the input masks must pass it too).
    """
    masks = masks.copy()
    minimality = np.full(len(clips), np.nan)
    n_units = np.zeros(len(clips), dtype=np.int64)
    todo = np.arange(len(clips))
    for rnd in range(ctx.params.minimise_rounds):
        units = {k: _units(masks[k], ctx.params.minimise_units) for k in todo}
        todo = np.asarray([k for k in todo if units[k]], dtype=np.int64)
        if todo.size == 0:
            break
        base = _base(ctx, clips, masks)
        owner = np.concatenate([[k] * len(units[k]) for k in todo]).astype(np.int64)
        drops = [[u] for k in todo for u in units[k]]
        ok = yield from ctx.holds(
            prop, clips[owner], phase, base=base, drop=Intervals.from_lists(drops)
        )
        next_todo, cum_owner, cum_drops = [], [], []
        for k in todo:
            removable_here = ok[owner == k]
            n_units[k] = len(units[k])
            minimality[k] = 1.0 - removable_here.mean()
            if not removable_here.any() or rnd == ctx.params.minimise_rounds - 1:
                continue
            idx = np.flatnonzero(removable_here)
            unit_resp = [responsibility[k, a:b][masks[k, a:b]].mean() for a, b in units[k]]
            idx = idx[np.argsort([unit_resp[i] for i in idx], kind="stable")]
            # the first removal alone is known to hold; test the longer prefixes
            masks[k, units[k][idx[0]][0] : units[k][idx[0]][1]] = False
            for j in range(2, len(idx) + 1):
                cum_owner.append(k)
                cum_drops.append([units[k][i] for i in idx[:j]])
            next_todo.append(k)
        if cum_owner:
            cum_owner_arr = np.asarray(cum_owner, dtype=np.int64)
            ok = yield from ctx.holds(
                prop,
                clips[cum_owner_arr],
                phase,
                base=_base(ctx, clips, masks),
                drop=Intervals.from_lists(cum_drops),
            )
            for k in np.unique(cum_owner_arr):
                run = ok[cum_owner_arr == k]
                n_ok = len(run) if run.all() else int(np.argmin(run))
                if n_ok:
                    for a, b in cum_drops[np.flatnonzero(cum_owner_arr == k)[n_ok - 1]]:
                        masks[k, a:b] = False
        todo = np.asarray(next_todo, dtype=np.int64)
    return masks, minimality, n_units


def _base(ctx: Context, clips: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    """Per-oracle-row base masks on the device: masks[k] at row clips[k] (rows unique)."""
    base = np.zeros((ctx.oracle.n_clips, masks.shape[1]), dtype=bool)
    base[clips] = masks
    return torch.as_tensor(base, device=ctx.oracle.device)
