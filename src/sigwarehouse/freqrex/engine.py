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

    @property
    def sufficient_share(self) -> float | None:
        """Share of variables kept by the sufficient mask (None without one)."""
        return None if self.sufficient_mask is None else float(self.sufficient_mask.mean())

    @property
    def complete_share(self) -> float | None:
        return None if self.complete_mask is None else float(self.complete_mask.mean())

    # Names the ingestion job reads (same values as the fields above).
    @property
    def orig_class(self) -> int:
        return self.label_index

    @property
    def orig_conf(self) -> float:
        return self.confidence

    @property
    def orig_probs(self) -> np.ndarray:
        return self.probs

    @property
    def n_bins(self) -> int:
        return self.n_vars

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
    oracle = Oracle(
        classifier, clips, lambda n_samples: make_space(n_samples, params), params.batch_size
    )
    n, width, dev = oracle.n_clips, oracle.width, oracle.device
    seeds = [_clip_seed(w, params.seed) for w in clips]
    rows = np.arange(n)
    # variables past a shorter clip's own count exist only as padding of the shared width
    own = np.arange(width)[None, :] < oracle.n_vars[:, None]

    probs = oracle.originals()
    target = probs.argmax(dim=1).numpy()
    sigma = probs.max(dim=1).values.numpy().astype(np.float64)
    ctx = Context(oracle, target, sigma, params)
    suff, comp = sufficient_property(params), complete_property(params)

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
        return (found_arr, *shrunk)

    def sufficient_then_extras():
        s_res = yield from search(suff, active, [("", rank)], oracle.n_vars, "sufficient")
        extra: dict[int, list[np.ndarray]] = {int(i): [] for i in rows}
        used = ~own
        used[s_res[0]] |= s_res[1]
        for round_ in range(1, params.n_sufficient):
            cand = np.asarray([i for i in s_res[0] if (~used[i]).any()], dtype=np.int64)
            if cand.size == 0:
                break
            rank_x = [("", rank_positions(resp, magnitude, allowed=~used))]
            limit = (~used).sum(axis=1)
            found, masks, _, _ = yield from search(suff, cand, rank_x, limit, f"extra{round_}")
            for i, m in zip(found, masks, strict=True):
                extra[int(i)].append(m)
                used[i] |= m
        return s_res, extra

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
    (s_res, extra), c_res = drive(oracle, [sufficient_then_extras(), complete_search])

    out = _verify_and_collect(ctx, probs, empty_probs, empty_keeps, resp, s_res, c_res, extra)
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


def _verify_and_collect(
    ctx, probs, empty_probs, empty_keeps, resp, suff_res, comp_res, extra
) -> list[Explanation]:
    """Re-evaluate every mask to be returned in one batch and build the Explanations."""
    oracle, params, target, sigma = ctx.oracle, ctx.params, ctx.target, ctx.sigma
    n = oracle.n_clips
    masks: list[np.ndarray] = []
    req_clip: list[int] = []
    invert: list[bool] = []
    slots: dict[tuple, int] = {}

    def add(key: tuple, clip: int, mask: np.ndarray, inv: bool = False) -> None:
        slots[key] = len(masks)
        masks.append(mask)
        req_clip.append(clip)
        invert.append(inv)

    for i, m in zip(suff_res[0], suff_res[1], strict=True):
        add(("s", int(i)), int(i), m)
    for i, m in zip(comp_res[0], comp_res[1], strict=True):
        add(("c", int(i)), int(i), m)
        add(("inv", int(i)), int(i), m, inv=True)
    for i, ms in extra.items():
        for j, m in enumerate(ms):
            add(("x", i, j), i, m)

    clip_arr = np.asarray(req_clip, dtype=np.int64)
    check = torch.zeros((0, oracle.classifier.n_labels))
    keep_ok = keep_delta = rej = np.zeros(0, dtype=bool)
    if masks:
        base = torch.as_tensor(np.stack(masks), device=oracle.device)
        req = MaskRequests(
            clip_arr,
            base=base,
            base_row=np.arange(len(masks)),
            invert=np.asarray(invert),
        )
        check = oracle.run(req, "verify", fresh=True)  # deliberate: re-evaluate every mask
        t, s, margin = target[clip_arr], sigma[clip_arr], params.decision_margin
        keep_ok = keeps(check, t, s, margin, params.sufficient_confidence)
        keep_delta = keeps(check, t, s, margin, params.delta)
        rej = rejects(check, t, margin)
    p_np = check.numpy()

    s_removable = dict(zip(suff_res[0].tolist(), suff_res[2], strict=True))
    s_checked = dict(zip(suff_res[0].tolist(), suff_res[3], strict=True))
    c_removable = dict(zip(comp_res[0].tolist(), comp_res[2], strict=True))
    c_checked = dict(zip(comp_res[0].tolist(), comp_res[3], strict=True))
    out = []
    for i in range(n):
        space, n_vars = oracle.space_of(i), int(oracle.n_vars[i])
        s_mask = s_probs = c_mask = c_probs = inv_probs = None
        if empty_keeps[i]:
            s_mask, s_reason = np.zeros(n_vars, dtype=bool), EMPTY_KEEPS
            s_probs = empty_probs[i].numpy()
        elif ("s", i) not in slots:
            s_reason = "no-sufficient-prefix"
        elif keep_ok[slots["s", i]]:
            s_mask, s_reason, s_probs = masks[slots["s", i]][:n_vars], None, p_np[slots["s", i]]
        else:
            s_reason = "verification-failed"

        if ("c", i) not in slots:
            c_reason = "no-complete-mask-found"
        elif keep_delta[slots["c", i]] and rej[slots["inv", i]]:
            c_mask, c_reason = masks[slots["c", i]][:n_vars], None
            c_probs, inv_probs = p_np[slots["c", i]], p_np[slots["inv", i]]
        else:
            c_reason = "verification-failed"

        x_masks, x_probs = [], []
        for j, m in enumerate(extra[i]):
            if keep_ok[slots["x", i, j]]:
                x_masks.append(m[:n_vars])
                x_probs.append(p_np[slots["x", i, j]])

        out.append(
            Explanation(
                clip_index=i,
                n_samples=space.n_samples,
                space=space.kind,
                n_vars=n_vars,
                label_index=int(target[i]),
                confidence=float(sigma[i]),
                probs=probs[i].numpy(),
                empty_probs=empty_probs[i].numpy(),
                responsibility=resp[i, :n_vars].copy(),
                sufficient_mask=s_mask,
                sufficient_reason=s_reason,
                sufficient_probs=s_probs,
                sufficient_removable=float(s_removable.get(i, np.nan))
                if s_mask is not None
                else np.nan,
                sufficient_checked=int(s_checked.get(i, 0)),
                complete_mask=c_mask,
                complete_reason=c_reason,
                complete_probs=c_probs,
                inverse_probs=inv_probs,
                inverse_label_index=None if inv_probs is None else int(np.argmax(inv_probs)),
                complete_removable=float(c_removable.get(i, np.nan))
                if c_mask is not None
                else np.nan,
                complete_checked=int(c_checked.get(i, 0)),
                queries=int(oracle.queries[i]),
                queries_by_phase={k: int(v[i]) for k, v in oracle.by_phase.items()},
                params=params.to_dict(),
                extra_sufficient_masks=x_masks,
                extra_sufficient_probs=x_probs,
            )
        )
    return out
