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

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sigwarehouse.freqrex.oracle import MaskRequests, Oracle
from sigwarehouse.freqrex.params import ALGORITHM_VERSION, FreqrexParams
from sigwarehouse.freqrex.renderings import RENDERINGS, float64_signals, pcm16
from sigwarehouse.freqrex.responsibility import responsibility_maps
from sigwarehouse.freqrex.search import (
    Context,
    base_masks,
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
    """The freqrex result for one clip on one model (masks and map per rfft bin, or per
    STFT cell; the search ran over variables of bins_per_var bins each).

    Reasons: sufficient_reason is None when a non-empty sufficient mask was found,
    "empty-signal-keeps-class" when the empty mask is the answer, otherwise the reason
    the mask is None ("no-sufficient-prefix", "verification-failed"). complete_reason is
    None when complete_mask is set, else why not ("no-complete-mask-found",
    "verification-failed"). The *_removable figures are the share of the mask's kept
    variables whose single removal keeps the property (0.0: 1-minimal per variable, i.e.
    per bin where bins_per_var is 1), measured over *_checked variables (all kept ones,
    or a sample for a very large mask); nan when there is no non-empty mask.
    """

    clip_index: int
    n_samples: int
    space: str
    n_vars: int  # entries of the masks and the map: rfft bins (or STFT cells)
    bins_per_var: int  # bins per search variable (see FreqrexParams.variable_hz)
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
    decision_margin: float = 0.0  # the margin its masks were searched and verified with
    # the largest output move between renderings on a mask that failed verification
    rendering_spread: float = 0.0
    failed: bool = False  # a mask it found failed verification (and was dropped)
    # the model's answers on this clip's masks by mask fingerprint, while explain may
    # search the clip again (emptied before it returns)
    answers: dict = field(default_factory=dict, repr=False, compare=False)

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
            "bins_per_variable": self.bins_per_var,
            "searched_in": self.searched_in,
            "float32_retry": self.float32_retry,
            "decision_margin": self.decision_margin,
            "rendering_spread": self.rendering_spread,
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
    margin: float | None = None,
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

    `margin`, if larger than params.decision_margin, is the decision margin used instead
    (e.g. the model's measured rendering noise floor); it is not part of the parameters'
    hash, and each Explanation records the margin its masks hold by (decision_margin).
    Every returned mask holds in each rendering of freqrex.renderings; a clip whose
    verdict depends on the rendering is searched again with a wider margin.
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
    searched = params
    if margin is not None and margin > params.decision_margin:
        searched = dataclasses.replace(params, decision_margin=float(margin))
    verify = params.decision_margin
    out = _explain_in_precision(classifier, clips, searched, stats, verify)
    # Clips with a mask that failed verification in some rendering: searched again,
    # whole, with a margin twice as wide, or twice the largest move between renderings
    # seen on the failing masks if that is wider (the clip's own figures, so the result
    # stays batch-independent).
    # A margin of 1 or more no difference of probabilities can reach: there the clip
    # keeps what it had, its failed masks dropped with the reason "verification-failed"
    # (searched again, it would find nothing and say "no-sufficient-prefix").
    for _ in range(RENDERING_RETRIES):
        wide = {
            i: _wider_margin(ex.decision_margin, ex.rendering_spread, verify)
            for i, ex in enumerate(out)
            if ex.failed and ex.rendering_spread > 0
        }
        retry = [i for i, m in wide.items() if m < 1.0]
        if not retry:
            break
        for i in retry:
            wider = dataclasses.replace(searched, decision_margin=wide[i])
            more: dict = {}
            [again] = _explain_in_precision(
                classifier, [clips[i]], wider, more, verify, known=out[i].answers
            )
            if stats is not None:
                stats.update({key: stats.get(key, 0) + value for key, value in more.items()})
            again.clip_index, again.queries = i, again.queries + out[i].queries
            for phase, count in out[i].queries_by_phase.items():  # earlier attempts' phases
                tried = f"margin-{out[i].decision_margin:.2g}-{phase}"
                again.queries_by_phase[phase if phase.startswith("margin-") else tried] = count
            out[i] = again
    for ex in out:  # what was asked for, not the wider margin some clip needed: the hash
        ex.params = params.to_dict()
        ex.answers = {}
    return out


# how often a clip whose verdict depends on the rendering is searched again (a wider margin)
RENDERING_RETRIES = 2


def _wider_margin(margin: float, spread: float, base: float) -> float:
    """At least twice the margin and twice the spread, rounded up to the parameters'
    margin times a power of two: float noise of the batch moves a spread by ~1e-7, and on
    so coarse a grid it almost never moves the margin a clip is searched with."""
    unit = max(base, 1e-6)
    return unit * 2.0 ** math.ceil(math.log2(2 * max(margin, spread, unit) / unit))


def _explain_in_precision(
    classifier: AudioClassifier,
    clips: list[torch.Tensor],
    params: FreqrexParams,
    stats: dict | None,
    verify_margin: float,
    known: dict | None = None,
) -> list[Explanation]:
    """explain's search in the classifier's precision, then again in float32 for the
    clips whose masks failed their float32 verification (see the module doc). `known`:
    answers already had for a single clip's masks (an earlier attempt's), reused."""
    dtype = getattr(classifier, "dtype", torch.float32)
    if dtype == torch.float32 or precision.in_float32_only():
        return _explain(classifier, clips, params, stats, "float32", verify_margin, known)
    # Lower precision: search, then search again in float32 the clips with a returned
    # mask that failed its float32 verification (see the module doc).
    searched_in = str(dtype).removeprefix("torch.")
    first_stats: dict = {}
    retry_stats: dict = {}
    out = _explain(classifier, clips, params, first_stats, searched_in, verify_margin, known)
    retry = [i for i, ex in enumerate(out) if ex.float32_retry]
    if retry:
        with precision.float32_only():
            again = _explain(
                classifier, [clips[i] for i in retry], params, retry_stats, "float32", verify_margin
            )
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
    verify_margin: float,
    known: dict | None = None,
) -> list[Explanation]:
    """explain's search on float32 clips: mutants in the classifier's precision (unless
    `searched_in` is float32), originals, empty signals and verification in float32.
    The search decides by params.decision_margin; the empty signal and the verification
    (in every rendering) by verify_margin, the parameters' own.
    An Explanation comes back with float32_retry set where the classifier runs in lower
    precision and one of its masks failed the float32 verification (explain retries
    those); otherwise the Explanation is final."""
    low = searched_in != "float32"
    oracle = Oracle(
        classifier,
        clips,
        lambda n_samples: make_space(n_samples, params, getattr(classifier, "sample_rate", None)),
        params.batch_size,
    )
    for key, probs in (known or {}).items():  # one clip's earlier answers (explain's retry)
        oracle.answers[(0, *key)] = probs
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
    empty_keeps = keeps(empty_probs, target, sigma, verify_margin, params.sufficient_confidence)
    active = rows[~empty_keeps]

    resp = responsibility_maps(oracle, active, target, sigma, empty_keeps, seeds, params)
    magnitude = oracle.magnitude()
    rank = rank_positions(resp, magnitude, allowed=own)

    def search(prop, clips_, stages, limit, phase, base=None):
        """Grow prefixes, then minimise. `stages` is a list of lists of (name, ranking):
        a stage's rankings are each grown on the clips still without a candidate, and a
        clip takes the smallest passing prefix among them (ties: the earlier ranking);
        the clips that found none go on to the next stage. limit[row]: the most
        variables row may keep. base (per oracle row, or None): variables every
        candidate keeps besides its prefix."""
        left, found, masks = clips_, [], []
        for stage in stages:
            best = np.full(len(left), -1, dtype=np.int64)
            winner = np.zeros(len(left), dtype=np.int64)
            for j, (name, rank_t) in enumerate(stage):
                size = yield from grow(
                    ctx, prop, left, rank_t, limit[left], f"{phase}-grow{name}", base=base
                )
                better = (size >= 0) & ((best < 0) | (size < best))
                best[better], winner[better] = size[better], j
            hit = best >= 0
            for j, (_, rank_t) in enumerate(stage):
                won = hit & (winner == j)
                rows_won = torch.as_tensor(left[won], device=dev)
                grown = rank_t[rows_won] < torch.as_tensor(best[won], device=dev)[:, None]
                if base is not None:
                    grown |= base[rows_won]
                masks.append(grown.cpu().numpy())
                found.append(left[won])
            left = left[~hit]
            if left.size == 0:
                break
        found_arr = np.concatenate(found)
        order = np.argsort(found_arr, kind="stable")  # oracle row order, whichever ranking
        found_arr, mask_arr = found_arr[order], np.concatenate(masks)[order]
        shrunk = yield from minimise(ctx, prop, found_arr, mask_arr, resp, f"{phase}-minimise")
        return Found(found_arr, *shrunk)

    def sufficient_then_extras():
        first = yield from search(suff, active, [[("", rank)]], oracle.n_vars, "sufficient")
        extra: dict[int, list[np.ndarray]] = {int(i): [] for i in rows}
        used = ~own
        used[first.rows] |= first.masks
        for round_ in range(1, params.n_sufficient):
            cand = np.asarray([i for i in first.rows if (~used[i]).any()], dtype=np.int64)
            if cand.size == 0:
                break
            rank_x = [[("", rank_positions(resp, magnitude, allowed=~used))]]
            limit = (~used).sum(axis=1)
            more = yield from search(suff, cand, rank_x, limit, f"extra{round_}")
            for i, m in zip(more.rows, more.masks, strict=True):
                extra[int(i)].append(m)
                used[i] |= m
        return first, extra

    def complete_search(first: Found):
        """The delta-complete search, started from each clip's certified sufficient mask
        S where it has one (see _certified): S itself if it is complete (then certified
        1-minimal already), else S plus the shortest prefix of the other variables in
        responsibility order, minimised. Clips without such an S, and those whose every
        S-based candidate fails, search from nothing: responsibility order, then a
        low-pass and a high-pass band."""
        start = _certified(first, params)
        results: list[Found] = []
        left = np.setdiff1d(rows, first.rows[start])
        if start.any():
            s_rows, s_masks = first.rows[start], first.masks[start]
            base = base_masks(ctx, s_rows, s_masks)
            ok = yield from ctx.holds(comp, s_rows, "complete-from-sufficient", base=base)
            if ok.any():
                results.append(Found(s_rows[ok], s_masks[ok], first.removable[start][ok],
                                     first.checked[start][ok]))  # fmt: skip
            grow_rows = s_rows[~ok]
            if grow_rows.size:
                free = own.copy()
                free[s_rows] &= ~s_masks
                rank_free = rank_positions(resp, magnitude, allowed=free)
                # only a few variables more than S: a complete mask that needs many is
                # better searched from nothing (S-based ones minimise worse, measured)
                s_size = np.zeros(n, dtype=np.int64)
                s_size[s_rows] = s_masks.sum(axis=1)
                limit = np.minimum(free.sum(axis=1), _grow_beyond(s_size))
                grown = yield from search(
                    comp, grow_rows, [[("-from-sufficient", rank_free)]], limit,
                    "complete", base=base,
                )  # fmt: skip
                results.append(grown)
                left = np.union1d(left, np.setdiff1d(grow_rows, grown.rows))
        if left.size:
            by_magnitude = rank_positions(np.zeros_like(resp), magnitude, allowed=own)
            stages = [
                [("", rank), ("-magnitude", by_magnitude)],
                [("-lowpass", _band_order(oracle, dev, low_first=True))],
                [("-highpass", _band_order(oracle, dev, low_first=False))],
            ]
            results.append((yield from search(comp, left, stages, oracle.n_vars, "complete")))
        return _merge(results, width)

    def sufficient_then_complete():
        first, extra = yield from sufficient_then_extras()
        complete = yield from complete_search(first)
        return first, extra, complete

    [(sufficient, extra, complete)] = drive(oracle, [sufficient_then_complete()])

    with precision.float32_only():
        verdicts = _verify(ctx, sufficient, complete, extra, verify_margin)
    out = [
        _build(ctx, i, probs[i], empty_probs[i], bool(empty_keeps[i]), resp[i], verdicts)
        for i in range(oracle.n_clips)
    ]
    for (row, *key), answer in oracle.answers.items():  # for a retry of the clip
        out[row].answers[tuple(key)] = answer
    for i, ex in enumerate(out):
        ex.searched_in = searched_in
        dropped = len(verdicts.extra[i]) < len(extra.get(i, []))
        ex.float32_retry = low and (ex.failed or dropped)
    if stats is not None:
        stats.update(
            queries=int(oracle.queries.sum()), batches=oracle.batches, rounds=oracle.rounds
        )
    return out


def _certified(first: Found, params: FreqrexParams) -> np.ndarray:
    """Which of the sufficient search's masks the complete search may start from: the
    non-empty ones whose last certification tested every kept variable and found none
    removable. If such a mask S is also delta-complete it is 1-minimal as a complete
    mask too: each S minus one variable fails sufficiency (top-1 by the margin, and
    p[c] >= sufficient_confidence * sigma), so it fails the stricter delta test as
    well, as long as delta >= sufficient_confidence."""
    sizes = first.masks.sum(axis=1)
    ok = (sizes > 0) & (first.removable == 0) & (first.checked == sizes)
    return ok & (params.delta >= params.sufficient_confidence)


def _grow_beyond(sizes: np.ndarray) -> np.ndarray:
    """The most variables the complete search adds to a sufficient mask of each size."""
    return np.maximum(16, sizes)


def _merge(parts: list[Found], width: int) -> Found:
    """One Found from several over disjoint rows, in oracle row order."""
    if not parts:
        empty = np.zeros(0)
        return Found(empty.astype(np.int64), np.zeros((0, width), dtype=bool), empty, empty)
    rows = np.concatenate([p.rows for p in parts])
    order = np.argsort(rows, kind="stable")
    return Found(
        rows[order],
        np.concatenate([p.masks for p in parts])[order],
        np.concatenate([p.removable for p in parts])[order],
        np.concatenate([p.checked for p in parts])[order],
    )


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
    spread: dict[int, float]  # per row with a failing mask: the largest output move between
    # renderings on its failing masks


def _verify(
    ctx: Context, sufficient: Found, complete: Found, extra: dict, margin: float
) -> Verdicts:
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
    verdicts = Verdicts({}, {}, set(), set(), {i: [] for i in extra}, {})
    if not checks:
        return verdicts
    clip = np.asarray([c[1] for c in checks], dtype=np.int64)
    masks = np.stack([c[2] for c in checks])
    invert = np.asarray([c[3] for c in checks])
    answers = {
        k: torch.from_numpy(v) for k, v in _rendered(ctx.oracle, clip, masks, invert).items()
    }
    t, s = target[clip], sigma[clip]
    kind = np.asarray([c[0] for c in checks])
    verdict = {}  # per rendering: does each check's mask meet its definition there?
    for name, probs in answers.items():
        keep_ok = keeps(probs, t, s, margin, params.sufficient_confidence)
        keep_delta = keeps(probs, t, s, margin, params.delta)
        rejected = rejects(probs, t, margin)
        verdict[name] = np.where(
            kind == "c", keep_delta, np.where(kind == "inv", rejected, keep_ok)
        )
    held = np.logical_and.reduce(list(verdict.values()))  # in every rendering
    # where the renderings disagree, how far apart their outputs lie (a retry's margin)
    split = ~held & np.logical_or.reduce(list(verdict.values()))
    p = {name: probs.float().numpy() for name, probs in answers.items()}
    spread = np.maximum(np.abs(p["float64"] - p["float32"]).max(axis=1),
                        np.abs(p["pcm16"] - p["float64"]).max(axis=1))  # fmt: skip
    split &= np.isfinite(spread)  # a non-finite answer fails everywhere; nothing to widen
    for row, gap in zip(clip[split], spread[split], strict=True):  # 4 decimals: a figure
        verdicts.spread[row] = max(verdicts.spread.get(row, 0.0), round(float(gap), 4))
    p = p["float64"]  # stored: the probabilities of the signal signals_for builds
    at = {(kind, row, j): n for n, (kind, row, _, _, j) in enumerate(checks)}

    for k, row in enumerate(sufficient.rows.tolist()):
        n = at["s", row, -1]
        if held[n]:
            verdicts.sufficient[row] = Verified(
                sufficient.masks[k], p[n], sufficient.removable[k], int(sufficient.checked[k])
            )
        else:
            verdicts.failed_sufficient.add(row)
    for k, row in enumerate(complete.rows.tolist()):
        n, inv = at["c", row, -1], at["inv", row, -1]
        if held[n] and held[inv]:
            verdicts.complete[row] = Verified(
                complete.masks[k], p[n], complete.removable[k], int(complete.checked[k]), p[inv]
            )
        else:
            verdicts.failed_complete.add(row)
    for row, masks in extra.items():
        for j, m in enumerate(masks):
            if held[at["x", row, j]]:
                verdicts.extra[row].append(Verified(m, p[at["x", row, j]]))
    return verdicts


@torch.inference_mode()
def _rendered(oracle: Oracle, clip: np.ndarray, masks: np.ndarray, invert: np.ndarray) -> dict:
    """The model's probabilities on each requested signal in each rendering of
    freqrex.renderings, asked anew by direct calls (three model queries a signal)."""
    classifier = oracle.classifier
    rate = getattr(classifier, "sample_rate", None) or 16000  # only a WAV header field
    out = {name: np.empty((len(clip), classifier.n_labels), np.float32) for name in RENDERINGS}
    for g in np.unique(oracle.group[clip]):
        idx = np.flatnonzero(oracle.group[clip] == g)
        space = oracle.spaces[g]
        local = oracle.local[torch.as_tensor(clip[idx], device=oracle.device)]
        kept = torch.as_tensor(masks[idx, : space.n_vars], device=oracle.device)
        kept = kept ^ torch.as_tensor(invert[idx], device=oracle.device)[:, None]
        waves = oracle.waves[g][local]
        single = space.inverse(space.forward(waves.float()) * space.expand(kept))
        exact = float64_signals(space, waves, kept)
        written = torch.from_numpy(pcm16(exact.cpu().numpy(), rate)).to(oracle.device)
        for name, signals in (("float32", single), ("float64", exact), ("pcm16", written)):
            oracle._count(clip[idx], "verify")  # model queries like any other
            for a in range(0, len(idx), oracle.batch_size):
                batch = signals[a : a + oracle.batch_size]
                out[name][idx[a : a + len(batch)]] = classifier(batch).float().cpu().numpy()
                oracle.batches += 1
    return out


def _build(
    ctx: Context,
    i: int,
    probs: torch.Tensor,
    empty_probs: torch.Tensor,
    empty_keeps: bool,
    responsibility: np.ndarray,
    verdicts: Verdicts,
) -> Explanation:
    """Oracle row i's Explanation from the verdicts: masks and map cut to the clip's
    variables and given per bin (each variable's value on every bin it holds)."""
    oracle = ctx.oracle
    space, n_vars = oracle.space_of(i), int(oracle.n_vars[i])

    def per_bin(values: np.ndarray) -> np.ndarray:
        return space.to_bins(values[:n_vars])

    suff, comp = verdicts.sufficient.get(i), verdicts.complete.get(i)
    if empty_keeps:
        s_mask, s_reason, s_probs = per_bin(np.zeros(n_vars, dtype=bool)), EMPTY_KEEPS, \
            empty_probs.numpy()  # fmt: skip
    elif suff is not None:
        s_mask, s_reason, s_probs = per_bin(suff.mask), None, suff.probs
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
        n_vars=space.n_bins,
        bins_per_var=space.bins_per_var,
        label_index=int(ctx.target[i]),
        confidence=float(ctx.sigma[i]),
        probs=probs.numpy(),
        empty_probs=empty_probs.numpy(),
        responsibility=per_bin(responsibility).copy(),
        sufficient_mask=s_mask,
        sufficient_reason=s_reason,
        sufficient_probs=s_probs,
        sufficient_removable=float(suff.removable) if suff is not None else np.nan,
        sufficient_checked=suff.checked if suff is not None else 0,
        complete_mask=None if comp is None else per_bin(comp.mask),
        complete_reason=c_reason,
        complete_probs=None if comp is None else comp.probs,
        inverse_probs=None if comp is None else comp.inverse_probs,
        inverse_label_index=None if comp is None else int(np.argmax(comp.inverse_probs)),
        complete_removable=float(comp.removable) if comp is not None else np.nan,
        complete_checked=comp.checked if comp is not None else 0,
        queries=int(oracle.queries[i]),
        queries_by_phase={k: int(v[i]) for k, v in oracle.by_phase.items()},
        params=ctx.params.to_dict(),
        extra_sufficient_masks=[per_bin(x.mask) for x in verdicts.extra[i]],
        extra_sufficient_probs=[x.probs for x in verdicts.extra[i]],
        decision_margin=ctx.params.decision_margin,
        rendering_spread=verdicts.spread.get(i, 0.0),
        failed=i in verdicts.failed_sufficient or i in verdicts.failed_complete,
    )
