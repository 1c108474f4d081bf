"""`explain`: the whole freqrex pipeline for a batch of clips, one `Explanation` each.

Phases, each one batch of oracle requests across all clips of a length group:
original probabilities -> empty signal -> responsibility (one batch per refinement
level) -> sufficient growth and minimisation -> delta-complete growth and minimisation
-> optional further disjoint sufficient masks -> a final verification of every
returned mask. A mask that fails verification is dropped with a reason, so an
`Explanation` never carries a mask that fails its own definition.

Where the empty signal already keeps the class, the sufficient mask is empty and no
responsibility is computed (nothing needs to be kept), but the delta-complete search runs
as on any clip: it grows along the bins' magnitude. On every clip where the complete
search finds nothing along its first ranking it tries a low-pass and then a high-pass
ranking (bins by ascending, then descending frequency).

An explanation depends on the clip's samples, the model and the parameters only: each
clip's random splits are seeded from its own samples, every decision is made per clip,
and `decision_margin` keeps float noise of batch composition out of the decisions.

Lower precision (a classifier whose network runs in bfloat16 or float16, see
models/precision.py) speeds up the search's mutants only. The original probabilities,
the empty signal and the final verification of every returned mask are asked of the
model in float32, so each stored decision is the float32 model's. A clip with a mask
that fails that float32 verification is searched again, whole, in float32: a
lower-precision model can prefer masks the float32 model rejects (not only ones near
the margin), and storing those clips as "verification-failed" would make a
lower-precision run find fewer and different masks than a float32 run of the same
parameter set, which shares its hash. The retry costs a second search on those clips
only, and is recorded in the Explanation (float32_retry).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from sigwarehouse.freqrex.oracle import MaskRequests, Oracle
from sigwarehouse.freqrex.params import ALGORITHM_VERSION, FreqrexParams
from sigwarehouse.freqrex.responsibility import responsibility_maps
from sigwarehouse.freqrex.search import (
    Context,
    complete_property,
    drive,
    grow,
    minimise,
    rank_positions,
    sufficient_property,
)
from sigwarehouse.freqrex.spectral import make_space
from sigwarehouse.freqrex.verdict import keeps, rejects
from sigwarehouse.models import precision
from sigwarehouse.models.base import AudioClassifier

EMPTY_KEEPS = "empty-signal-keeps-class"


@dataclass
class Explanation:
    """The freqrex result for one clip on one model (masks over the space's variables).

    Reasons: sufficient_reason is None when a non-empty sufficient mask was found,
    "empty-signal-keeps-class" when the empty mask is the answer, otherwise the reason
    the mask is None ("no-sufficient-prefix", "verification-failed"). complete_reason is
    None when complete_mask is set, else why not ("no-complete-mask-found",
    "verification-failed"). The *_removable figures are the share of the mask's kept
    bins whose single removal keeps the property (0.0: 1-minimal per bin), measured over
    *_checked bins (all kept bins, or a sample for a very large mask); nan when there
    is no non-empty mask.
    """

    clip_index: int
    n_samples: int
    space: str
    n_vars: int
    label_index: int
    confidence: float
    probs: np.ndarray
    empty_probs: np.ndarray
    responsibility: np.ndarray
    sufficient_mask: np.ndarray | None
    sufficient_reason: str | None
    sufficient_probs: np.ndarray | None
    sufficient_removable: float
    sufficient_checked: int
    complete_mask: np.ndarray | None
    complete_reason: str | None
    complete_probs: np.ndarray | None
    inverse_probs: np.ndarray | None
    inverse_label_index: int | None
    complete_removable: float
    complete_checked: int
    queries: int
    queries_by_phase: dict[str, int]
    params: dict
    extra_sufficient_masks: list[np.ndarray] = field(default_factory=list)
    extra_sufficient_probs: list[np.ndarray] = field(default_factory=list)
    searched_in: str = "float32"  # the precision the stored masks were searched in
    float32_retry: bool = False  # searched again in float32 after failing verification

    @property
    def sufficient_share(self) -> float | None:
        """Share of variables kept by the sufficient mask (None without one)."""
        return None if self.sufficient_mask is None else float(self.sufficient_mask.mean())

    @property
    def complete_share(self) -> float | None:
        return None if self.complete_mask is None else float(self.complete_mask.mean())

    @property
    def minimality(self) -> dict:
        """The per-bin minimality figures as a JSON-able dict (nan becomes None)."""

        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "sufficient_removable": num(self.sufficient_removable),
            "sufficient_checked": self.sufficient_checked,
            "complete_removable": num(self.complete_removable),
            "complete_checked": self.complete_checked,
            "searched_in": self.searched_in,
            "float32_retry": self.float32_retry,
        }


def _as_waves(waves: torch.Tensor | list) -> list[torch.Tensor]:
    if isinstance(waves, torch.Tensor):
        if waves.dim() != 2:
            raise ValueError(f"expected waves shaped (batch, samples), got {tuple(waves.shape)}")
        return list(waves)
    out = [torch.as_tensor(np.asarray(w) if not torch.is_tensor(w) else w) for w in waves]
    for w in out:
        if w.dim() != 1:
            raise ValueError(f"each wave must be 1-D, got shape {tuple(w.shape)}")
    return out


def _clip_seed(wave: torch.Tensor, seed: int) -> list[int]:
    """RNG entropy for a clip: the seed and a hash of its samples (batch-independent)."""
    data = wave.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return [int(seed), int.from_bytes(hashlib.sha256(data).digest()[:8], "little")]


def explain(
    classifier: AudioClassifier,
    waves: torch.Tensor | list,
    params: FreqrexParams | None = None,
    stats: dict | None = None,
) -> list[Explanation]:
    """Explain each clip's top-1 class on `classifier`; one Explanation per clip, in order.

    `waves` is a (batch, samples) tensor or a list of 1-D waves of any lengths, at the
    classifier's sample rate. All clips advance through the phases together, so each
    phase is one stream of full batches (per clip length). Deterministic for given
    params (seed included) and clip samples. Refuses waves that are not 1-D per clip,
    and STFT clips shorter than one frame. If `stats` is a dict, it receives the run's
    totals: queries, mutant batches (forward passes) and host round trips.

    A classifier whose `dtype` is lower than float32 runs the search's mutants in it;
    everything returned holds for the float32 model (see the module doc), and each
    Explanation says which precision its masks were searched in.
    """
    params = params or FreqrexParams()
    if params.algorithm != ALGORITHM_VERSION:
        raise ValueError(
            f"parameters of engine version {params.algorithm} cannot be re-run by this "
            f"engine (version {ALGORITHM_VERSION})"
        )
    clips = [w.float() for w in _as_waves(waves)]
    if not clips:
        return []
    dtype = getattr(classifier, "dtype", torch.float32)
    if dtype == torch.float32 or precision.in_float32_only():
        return _explain(classifier, clips, params, stats, "float32")
    # Lower precision: search, then search again in float32 the clips with a returned
    # mask that failed its float32 verification (see the module doc).
    searched_in = str(dtype).removeprefix("torch.")
    first_stats: dict = {}
    retry_stats: dict = {}
    out = _explain(classifier, clips, params, first_stats, searched_in)
    retry = [i for i, ex in enumerate(out) if ex.float32_retry]
    if retry:
        with precision.float32_only():
            again = _explain(classifier, [clips[i] for i in retry], params, retry_stats, "float32")
        for i, ex in zip(retry, again, strict=True):
            ex.clip_index, ex.float32_retry = i, True
            ex.queries += out[i].queries
            ex.queries_by_phase[f"{searched_in}-search"] = out[i].queries
            out[i] = ex
    if stats is not None:  # the run's totals, as a float32 run's: both searches' sums
        stats.update({key: value + retry_stats.get(key, 0) for key, value in first_stats.items()})
    return out


def _explain(
    classifier: AudioClassifier,
    clips: list[torch.Tensor],
    params: FreqrexParams,
    stats: dict | None,
    searched_in: str,
) -> list[Explanation]:
    """explain's search on float32 clips: mutants in the classifier's precision (unless
    `searched_in` is float32), originals, empty signals and verification in float32.
    An Explanation comes back with float32_retry set where the classifier runs in lower
    precision and one of its masks failed the float32 verification (explain retries
    those); otherwise the Explanation is final."""
    low = searched_in != "float32"
    oracle = Oracle(
        classifier, clips, lambda n_samples: make_space(n_samples, params), params.batch_size
    )
    n, width, dev = oracle.n_clips, oracle.width, oracle.device
    seeds = [_clip_seed(w, params.seed) for w in clips]
    rows = np.arange(n)
    # variables past a shorter clip's own count exist only as padding of the shared width
    own = np.arange(width)[None, :] < oracle.n_vars[:, None]

    with precision.float32_only():  # the class to explain is the float32 model's
        probs = oracle.originals()
    target = probs.argmax(dim=1).numpy()
    sigma = probs.max(dim=1).values.numpy().astype(np.float64)
    ctx = Context(oracle, target, sigma, params, seeds)
    suff, comp = sufficient_property(params), complete_property(params)

    with precision.float32_only():  # "the empty mask suffices" is a returned mask too
        empty_probs = oracle.run(MaskRequests(rows), "empty")
    empty_keeps = keeps(
        empty_probs, target, sigma, params.decision_margin, params.sufficient_confidence
    )
    active = rows[~empty_keeps]

    resp = responsibility_maps(oracle, active, target, sigma, empty_keeps, seeds, params)
    magnitude = oracle.magnitude()
    rank = rank_positions(resp, magnitude, allowed=own)

    def search(prop, clips_, rankings, limit, phase):
        """Grow prefixes along each (name, ranking) in turn, the clips that found nothing
        trying the next; then minimise. limit[row]: the most variables row may keep."""
        left, found, masks = clips_, [], []
        for name, rank_t in rankings:
            size = yield from grow(ctx, prop, left, rank_t, limit[left], f"{phase}-grow{name}")
            hit = size >= 0
            sizes = torch.as_tensor(size[hit], device=dev)[:, None]
            masks.append((rank_t[torch.as_tensor(left[hit], device=dev)] < sizes).cpu().numpy())
            found.append(left[hit])
            left = left[~hit]
            if left.size == 0:
                break
        found_arr = np.concatenate(found)
        order = np.argsort(found_arr, kind="stable")  # oracle row order, whichever ranking
        found_arr, mask_arr = found_arr[order], np.concatenate(masks)[order]
        shrunk = yield from minimise(ctx, prop, found_arr, mask_arr, resp, f"{phase}-minimise")
        return Found(found_arr, *shrunk)

    def sufficient_then_extras():
        first = yield from search(suff, active, [("", rank)], oracle.n_vars, "sufficient")
        extra: dict[int, list[np.ndarray]] = {int(i): [] for i in rows}
        used = ~own
        used[first.rows] |= first.masks
        for round_ in range(1, params.n_sufficient):
            cand = np.asarray([i for i in first.rows if (~used[i]).any()], dtype=np.int64)
            if cand.size == 0:
                break
            rank_x = [("", rank_positions(resp, magnitude, allowed=~used))]
            limit = (~used).sum(axis=1)
            more = yield from search(suff, cand, rank_x, limit, f"extra{round_}")
            for i, m in zip(more.rows, more.masks, strict=True):
                extra[int(i)].append(m)
                used[i] |= m
        return first, extra

    # Every clip gets a complete search, silence-class ones too (their map is all zero,
    # so their first ranking is by magnitude); where the first ranking finds nothing, a
    # low-pass and then a high-pass band are tried.
    complete_rankings = [
        ("", rank),
        ("-lowpass", _band_order(oracle, dev, low_first=True)),
        ("-highpass", _band_order(oracle, dev, low_first=False)),
    ]
    complete_search = search(comp, rows, complete_rankings, oracle.n_vars, "complete")

    # the sufficient and the complete search are independent: run them side by side
    (sufficient, extra), complete = drive(oracle, [sufficient_then_extras(), complete_search])

    with precision.float32_only():
        verdicts = _verify(ctx, sufficient, complete, extra)
    out = [
        _build(ctx, i, probs[i], empty_probs[i], bool(empty_keeps[i]), resp[i], verdicts)
        for i in range(oracle.n_clips)
    ]
    for i, ex in enumerate(out):
        ex.searched_in = searched_in
        dropped = len(verdicts.extra[i]) < len(extra.get(i, []))
        failed = i in verdicts.failed_sufficient or i in verdicts.failed_complete or dropped
        ex.float32_retry = low and failed
    if stats is not None:
        stats.update(
            queries=int(oracle.queries.sum()), batches=oracle.batches, rounds=oracle.rounds
        )
    return out


def _band_order(oracle: Oracle, device, low_first: bool) -> torch.Tensor:
    """Rank positions (n_clips, width) that keep bins in ascending (or descending)
    index order: grown prefixes are low-pass (or high-pass) bands."""
    index = torch.arange(oracle.width, device=device)[None, :].expand(oracle.n_clips, -1)
    if low_first:
        return index.to(torch.int32).contiguous()
    n_vars = torch.as_tensor(oracle.n_vars, device=device)[:, None]
    return torch.where(index < n_vars, n_vars - 1 - index, index).to(torch.int32)


@dataclass
class Found:
    """What one search returns: the oracle rows it found a mask for, their masks (rows
    of the shared width), and each mask's per-bin minimality figure (see minimise)."""

    rows: np.ndarray
    masks: np.ndarray
    removable: np.ndarray
    checked: np.ndarray


@dataclass
class Verified:
    """A mask that passed the final re-evaluation, with its probabilities."""

    mask: np.ndarray
    probs: np.ndarray
    removable: float = np.nan
    checked: int = 0
    inverse_probs: np.ndarray | None = None


@dataclass
class Verdicts:
    """Per oracle row: the verified sufficient and complete masks (absent: none found),
    which rows had a mask that failed verification, and the verified extra masks."""

    sufficient: dict[int, Verified]
    complete: dict[int, Verified]
    failed_sufficient: set[int]
    failed_complete: set[int]
    extra: dict[int, list[Verified]]


def _verify(ctx: Context, sufficient: Found, complete: Found, extra: dict) -> Verdicts:
    """Re-evaluate every mask to be returned, in one batch (deliberately asking the
    model again), and keep those that still meet their definition."""
    params, target, sigma = ctx.params, ctx.target, ctx.sigma
    # one request per mask to check: (kind, row, mask, invert, extra index)
    checks = []
    for i, m in zip(sufficient.rows, sufficient.masks, strict=True):
        checks.append(("s", int(i), m, False, -1))
    for i, m in zip(complete.rows, complete.masks, strict=True):
        checks += [("c", int(i), m, False, -1), ("inv", int(i), m, True, -1)]
    checks += [("x", i, m, False, j) for i, ms in extra.items() for j, m in enumerate(ms)]
    verdicts = Verdicts({}, {}, set(), set(), {i: [] for i in extra})
    if not checks:
        return verdicts
    clip = np.asarray([c[1] for c in checks], dtype=np.int64)
    req = MaskRequests(
        clip,
        base=torch.as_tensor(np.stack([c[2] for c in checks]), device=ctx.oracle.device),
        base_row=np.arange(len(checks)),
        invert=np.asarray([c[3] for c in checks]),
    )
    probs = ctx.oracle.run(req, "verify", fresh=True)
    t, s, margin = target[clip], sigma[clip], params.decision_margin
    keep_ok = keeps(probs, t, s, margin, params.sufficient_confidence)
    keep_delta = keeps(probs, t, s, margin, params.delta)
    rejected = rejects(probs, t, margin)
    p = probs.numpy()
    at = {(kind, row, j): n for n, (kind, row, _, _, j) in enumerate(checks)}

    for k, row in enumerate(sufficient.rows.tolist()):
        n = at["s", row, -1]
        if keep_ok[n]:
            verdicts.sufficient[row] = Verified(
                sufficient.masks[k], p[n], sufficient.removable[k], int(sufficient.checked[k])
            )
        else:
            verdicts.failed_sufficient.add(row)
    for k, row in enumerate(complete.rows.tolist()):
        n, inv = at["c", row, -1], at["inv", row, -1]
        if keep_delta[n] and rejected[inv]:
            verdicts.complete[row] = Verified(
                complete.masks[k], p[n], complete.removable[k], int(complete.checked[k]), p[inv]
            )
        else:
            verdicts.failed_complete.add(row)
    for row, masks in extra.items():
        for j, m in enumerate(masks):
            if keep_ok[at["x", row, j]]:
                verdicts.extra[row].append(Verified(m, p[at["x", row, j]]))
    return verdicts


def _build(
    ctx: Context,
    i: int,
    probs: torch.Tensor,
    empty_probs: torch.Tensor,
    empty_keeps: bool,
    responsibility: np.ndarray,
    verdicts: Verdicts,
) -> Explanation:
    """Oracle row i's Explanation from the verdicts (masks cut to the clip's variables)."""
    oracle = ctx.oracle
    space, n_vars = oracle.space_of(i), int(oracle.n_vars[i])
    suff, comp = verdicts.sufficient.get(i), verdicts.complete.get(i)
    if empty_keeps:
        s_mask, s_reason, s_probs = np.zeros(n_vars, dtype=bool), EMPTY_KEEPS, empty_probs.numpy()
    elif suff is not None:
        s_mask, s_reason, s_probs = suff.mask[:n_vars], None, suff.probs
    else:
        failed = i in verdicts.failed_sufficient
        s_mask, s_probs = None, None
        s_reason = "verification-failed" if failed else "no-sufficient-prefix"
    if comp is None:
        failed = i in verdicts.failed_complete
        c_reason = "verification-failed" if failed else "no-complete-mask-found"
    else:
        c_reason = None
    return Explanation(
        clip_index=i,
        n_samples=space.n_samples,
        space=space.kind,
        n_vars=n_vars,
        label_index=int(ctx.target[i]),
        confidence=float(ctx.sigma[i]),
        probs=probs.numpy(),
        empty_probs=empty_probs.numpy(),
        responsibility=responsibility[:n_vars].copy(),
        sufficient_mask=s_mask,
        sufficient_reason=s_reason,
        sufficient_probs=s_probs,
        sufficient_removable=float(suff.removable) if suff is not None else np.nan,
        sufficient_checked=suff.checked if suff is not None else 0,
        complete_mask=None if comp is None else comp.mask[:n_vars],
        complete_reason=c_reason,
        complete_probs=None if comp is None else comp.probs,
        inverse_probs=None if comp is None else comp.inverse_probs,
        inverse_label_index=None if comp is None else int(np.argmax(comp.inverse_probs)),
        complete_removable=float(comp.removable) if comp is not None else np.nan,
        complete_checked=comp.checked if comp is not None else 0,
        queries=int(oracle.queries[i]),
        queries_by_phase={k: int(v[i]) for k, v in oracle.by_phase.items()},
        params=ctx.params.to_dict(),
        extra_sufficient_masks=[x.mask[:n_vars] for x in verdicts.extra[i]],
        extra_sufficient_probs=[x.probs for x in verdicts.extra[i]],
    )
