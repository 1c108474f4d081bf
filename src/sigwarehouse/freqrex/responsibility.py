"""ReX-style causal responsibility over contiguous bands of variables (rfft bins).

One *tree* per (clip, iteration). A tree's node is a passing mutant: a set of bands kept,
everything else removed; the root keeps the whole range (the original signal). At each
level every band of the node that is wide enough is cut at random into `n_parts`
contiguous parts, and every combination of those parts (with the node's other bands
kept as they are) is queried. Within that split, part x gets responsibility

    r(x) = max over passing combinations P that contain x and for which P without x
           fails, of 1 / |P|

i.e. 1/(k+1) where k is the fewest other parts that must stay beside x for x to be a
counterfactual cause (1 if x alone keeps the class and the parts without x do not).
Unlike plain ReX a part that is not needed (P without x still passes) gets nothing
from P. The credit is added to every variable of the part. The next node is the
passing combination that keeps the least bandwidth (ReX's area queue); at most the
`max_split_bands` widest bands of a node are split per level (the others stay kept
as they are), which bounds a level's cost when evidence is spread; trees stop
when nothing passes, nothing can be split, or at `max_depth`. Each tree's map is the
sum of its levels' credits (so bins inside a band refined deeper accumulate more);
a clip's map is the mean over its `iterations` trees.

All trees of all clips advance one level at a time, so each level is one batch of
oracle requests (often thousands of mutants), never a query per mutant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sigwarehouse.freqrex.oracle import Intervals, MaskRequests, Oracle
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.freqrex.verdict import keeps

Band = tuple[int, int]


@dataclass
class _Tree:
    clip: int  # row in the oracle
    rng: np.random.Generator
    frontier: list[list[Band]]  # nodes to refine at the next level
    credit: np.ndarray  # difference array (width + 1) of this tree's map
    alive: bool = True


@dataclass
class _Split:
    tree: _Tree
    static: list[Band]
    parts: list[Band]
    first_request: int  # index of the request of combination 1; combination s at +s-1
    static_request: int | None  # request index of "static only", None: empty signal
    passes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _cut(band: Band, n_parts: int, min_width: int, rng: np.random.Generator) -> list[Band]:
    """n_parts contiguous parts of band, each at least min_width wide, cuts uniform."""
    start, end = band
    slack = (end - start) - n_parts * min_width
    offsets = np.sort(rng.integers(0, slack + 1, size=n_parts - 1))
    cuts = [start + (k + 1) * min_width + int(u) for k, u in enumerate(offsets)]
    edges = [start, *cuts, end]
    return [(edges[k], edges[k + 1]) for k in range(n_parts)]


def _popcounts(n_parts: int) -> np.ndarray:
    return np.array([bin(s).count("1") for s in range(1 << n_parts)])


def _credit_split(split: _Split, n_parts: int, sizes: np.ndarray) -> np.ndarray:
    """Responsibility of each part of one split, from the pass/fail of all 2**n combos."""
    full = (1 << n_parts) - 1
    r = np.zeros(n_parts)
    for x in range(n_parts):
        bit = 1 << x
        for s in range(1, full + 1):
            if s & bit and split.passes[s] and not split.passes[s ^ bit]:
                r[x] = max(r[x], 1.0 / sizes[s])
    return r


def responsibility_maps(
    oracle: Oracle,
    clips: np.ndarray,
    target: np.ndarray,
    sigma: np.ndarray,
    empty_passes: np.ndarray,
    seeds: list[list[int]],
    params: FreqrexParams,
) -> np.ndarray:
    """Responsibility maps (n_clips, oracle.width) float32 for the oracle rows in `clips`.

    target, sigma, empty_passes and seeds are indexed by oracle row (seeds[row] is that
    clip's RNG seed sequence, so its trees do not depend on which clips share the call).
    Rows not in `clips` are left zero. Refuses nothing; a clip whose root split has no
    passing proper combination gets a flat map from that tree.
    """
    width = oracle.width
    n_parts = params.n_parts
    full = (1 << n_parts) - 1
    sizes = _popcounts(n_parts)
    min_split = n_parts * params.min_band_bins
    trees = [
        _Tree(
            clip=int(row),
            rng=np.random.default_rng([*seeds[row], it]),
            frontier=[[(0, int(oracle.n_vars[row]))]],
            credit=np.zeros(width + 1),
        )
        for row in clips
        for it in range(params.iterations)
    ]
    for depth in range(params.max_depth):
        splits: list[_Split] = []
        req_clip: list[int] = []
        req_bands: list[list[Band]] = []
        for tree in trees:
            if not tree.alive:
                continue
            for node in tree.frontier:
                widths = [e - b for b, e in node]
                widest = sorted(range(len(node)), key=lambda a: -widths[a])
                chosen = [a for a in widest if widths[a] >= min_split][: params.max_split_bands]
                for a in sorted(chosen):
                    band = node[a]
                    parts = _cut(band, n_parts, params.min_band_bins, tree.rng)
                    static = node[:a] + node[a + 1 :]
                    static_request = None
                    if static:
                        static_request = len(req_clip)
                        req_clip.append(tree.clip)
                        req_bands.append(static)
                    first = len(req_clip)
                    for s in range(1, full):
                        req_clip.append(tree.clip)
                        req_bands.append(static + [parts[x] for x in range(n_parts) if s >> x & 1])
                    splits.append(_Split(tree, static, parts, first, static_request))
        if not splits:
            break
        clip_arr = np.asarray(req_clip, dtype=np.int64)
        requests = MaskRequests(clip_arr, keep=Intervals.from_lists(req_bands))
        probs = oracle.run(requests, "responsibility")
        passed = keeps(
            probs,
            target[clip_arr],
            sigma[clip_arr],
            params.decision_margin,
            params.confidence_filter,
        )
        p_target = probs.numpy()[np.arange(len(clip_arr)), target[clip_arr]]

        candidates: dict[int, list] = {}
        for split in splits:
            tree = split.tree
            passes = np.zeros(full + 1, dtype=bool)
            passes[full] = True  # the node itself passed at the level above
            if split.static_request is None:
                passes[0] = bool(empty_passes[tree.clip])
            else:
                passes[0] = passed[split.static_request]
            passes[1:full] = passed[split.first_request : split.first_request + full - 1]
            split.passes = passes
            r = _credit_split(split, n_parts, sizes)
            for x, (start, end) in enumerate(split.parts):
                tree.credit[start] += r[x]
                tree.credit[end] -= r[x]
            for s in range(0 if split.static else 1, full):
                if not passes[s]:
                    continue
                kept = split.static + [split.parts[x] for x in range(n_parts) if s >> x & 1]
                kept_width = sum(e - b for b, e in kept)
                req = split.static_request if s == 0 else split.first_request + s - 1
                candidates.setdefault(id(tree), []).append((kept_width, -p_target[req], req, kept))
        for tree in trees:
            if not tree.alive:
                continue
            found = sorted(candidates.get(id(tree), []), key=lambda c: c[:3])
            tree.frontier = [c[3] for c in found[: params.queue_len]]
            tree.alive = bool(tree.frontier) and depth + 1 < params.max_depth

    maps = np.zeros((oracle.n_clips, width), dtype=np.float64)
    for tree in trees:
        maps[tree.clip] += np.cumsum(tree.credit)[:width]
    return (maps / params.iterations).astype(np.float32)
