"""The batched oracle: "probabilities of clip i with mask m" for many (i, m) at once.

The search describes each phase's mutants compactly (`MaskRequests`: a prefix of a
ranking, a base mask, kept or dropped intervals, optionally the complement), and the
oracle materialises the masks chunk by chunk on the model's device, multiplies them
into the clips' spectra, inverts (irfft / istft) and runs the model, `batch_size`
mutants per forward pass, mixing clips freely. Nothing per mutant goes through numpy:
the host sends the compact descriptions and receives the probabilities, once per phase.

Clips of different lengths are explained together: the oracle keeps one spectrum
tensor per length and batches each length's mutants separately (a model's output
depends on the clip length, so mutants are never padded). Masks and ranks are indexed
over the longest clip's variables; clip i only ever uses its first n_vars[i].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sigwarehouse.freqrex.spectral import FFTSpace, STFTSpace, intervals_to_mask
from sigwarehouse.models.base import AudioClassifier


@dataclass
class Intervals:
    """Per-request unions of [start, end) intervals in CSR form (numpy, int64)."""

    row_ptr: np.ndarray  # (N + 1,): request r owns intervals row_ptr[r]:row_ptr[r+1]
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def from_lists(cls, per_request: list[list[tuple[int, int]]]) -> Intervals:
        counts = np.fromiter((len(x) for x in per_request), dtype=np.int64)
        row_ptr = np.concatenate(([0], np.cumsum(counts)))
        flat = [iv for x in per_request for iv in x]
        arr = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
        return cls(row_ptr, arr[:, 0].copy(), arr[:, 1].copy())

    def take(self, rows: np.ndarray) -> Intervals:
        """The intervals of requests `rows`, in that order (vectorised CSR gather)."""
        counts = np.diff(self.row_ptr)[rows]
        row_ptr = np.concatenate(([0], np.cumsum(counts)))
        within = np.arange(row_ptr[-1]) - np.repeat(row_ptr[:-1], counts)
        idx = np.repeat(self.row_ptr[rows], counts) + within
        return Intervals(row_ptr, self.starts[idx], self.ends[idx])


class _DeviceIntervals:
    """`Intervals` copied to the device once, sliced per chunk without host traffic."""

    def __init__(self, iv: Intervals, device: torch.device):
        self.row_ptr = iv.row_ptr
        counts = np.diff(iv.row_ptr)
        rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.rows = torch.as_tensor(rows, device=device)
        self.starts = torch.as_tensor(iv.starts, device=device)
        self.ends = torch.as_tensor(iv.ends, device=device)

    def mask(self, lo: int, hi: int, n_vars: int) -> torch.Tensor:
        a, b = int(self.row_ptr[lo]), int(self.row_ptr[hi])
        return intervals_to_mask(
            hi - lo, n_vars, self.rows[a:b] - lo, self.starts[a:b], self.ends[a:b]
        )


@dataclass
class MaskRequests:
    """A phase's mutants, described on the host. For request r with c = clip[r]:

    mask = (rank[c] < sizes[r] if sizes) | (base[b] if base) | keep intervals
           minus drop intervals; then the complement where invert[r],
    with b = base_row[r] if given, else c. `rank` (n_clips, width) and `base`
    (any rows, width) are tensors already on the device.
    """

    clip: np.ndarray
    rank: torch.Tensor | None = None
    sizes: np.ndarray | None = None
    base: torch.Tensor | None = None
    base_row: np.ndarray | None = None
    keep: Intervals | None = None
    drop: Intervals | None = None
    invert: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.clip = np.asarray(self.clip, dtype=np.int64)
        if (self.rank is None) != (self.sizes is None):
            raise ValueError("rank and sizes go together")

    def take(self, rows: np.ndarray) -> MaskRequests:
        """The requests `rows`, in that order."""

        def pick(a):
            return None if a is None else np.asarray(a)[rows]

        base_row = self.base_row if self.base_row is not None else self.clip
        return MaskRequests(
            clip=self.clip[rows],
            rank=self.rank,
            sizes=pick(self.sizes),
            base=self.base,
            base_row=None if self.base is None else np.asarray(base_row)[rows],
            keep=None if self.keep is None else self.keep.take(rows),
            drop=None if self.drop is None else self.drop.take(rows),
            invert=pick(self.invert),
        )


class _DeviceRequests:
    """MaskRequests with its per-request arrays on the device, built chunk by chunk."""

    def __init__(self, req: MaskRequests, local: torch.Tensor, device: torch.device):
        self.device = device
        self.clip = torch.as_tensor(req.clip, device=device)
        self.local = local[self.clip]  # row within the clip's length group
        self.rank = req.rank
        self.sizes = None if req.sizes is None else torch.as_tensor(req.sizes, device=device)
        self.base = req.base
        self.base_row = None
        if req.base is not None:
            rows = req.base_row if req.base_row is not None else req.clip
            self.base_row = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=device)
        self.keep = None if req.keep is None else _DeviceIntervals(req.keep, device)
        self.drop = None if req.drop is None else _DeviceIntervals(req.drop, device)
        self.invert = None
        if req.invert is not None and np.any(req.invert):
            self.invert = torch.as_tensor(np.asarray(req.invert, dtype=bool), device=device)

    def build(self, lo: int, hi: int, n_vars: int) -> torch.Tensor:
        """Bool masks (hi - lo, n_vars) on the device for requests lo..hi."""
        mask = torch.zeros((hi - lo, n_vars), dtype=torch.bool, device=self.device)
        if self.rank is not None:
            mask |= self.rank[self.clip[lo:hi], :n_vars] < self.sizes[lo:hi, None]
        if self.base is not None:
            mask |= self.base[self.base_row[lo:hi], :n_vars]
        if self.keep is not None:
            mask |= self.keep.mask(lo, hi, n_vars)
        if self.drop is not None:
            mask &= ~self.drop.mask(lo, hi, n_vars)
        if self.invert is not None:
            mask ^= self.invert[lo:hi, None]
        return mask


class Oracle:
    """Counts and answers model queries on masked signals of a batch of clips.

    Each clip (1-D tensor, any length) is moved to the classifier's device once and
    its coefficients in `make_space(length)` stay there. `n_vars[i]` is clip i's number
    of variables, `width` the largest. `queries[i]` counts the model evaluations spent
    on clip i, and `by_phase[name]` the same per phase.
    """

    def __init__(
        self,
        classifier: AudioClassifier,
        waves: list[torch.Tensor],
        make_space,
        batch_size: int = 64,
    ):
        self.classifier = classifier
        self.device = classifier.device
        self.batch_size = int(batch_size)
        self.n_clips = len(waves)
        lengths = np.asarray([int(w.shape[0]) for w in waves])
        self.group = np.unique(lengths, return_inverse=True)[1].ravel()
        local = np.zeros(self.n_clips, dtype=np.int64)
        self.spaces: list[FFTSpace | STFTSpace] = []
        self.waves: list[torch.Tensor] = []
        self.coeffs: list[torch.Tensor] = []
        with torch.inference_mode():
            for g in range(self.group.max() + 1 if self.n_clips else 0):
                members = np.flatnonzero(self.group == g)
                local[members] = np.arange(len(members))
                batch = torch.stack([waves[i] for i in members]).to(self.device, torch.float32)
                space = make_space(batch.shape[1])
                self.spaces.append(space)
                self.waves.append(batch)
                # float64: a mutant is the signal signals_for gives (freqrex.renderings)
                self.coeffs.append(space.forward(batch.double()))
        self.local = torch.as_tensor(local, device=self.device)
        self.n_vars = np.asarray([self.spaces[g].n_vars for g in self.group], dtype=np.int64)
        self.width = int(self.n_vars.max()) if self.n_clips else 0
        self.queries = np.zeros(self.n_clips, dtype=np.int64)
        self.by_phase: dict[str, np.ndarray] = {}
        self.batches = 0  # model forward passes on mutants
        self.rounds = 0  # host round trips (run_many calls)
        # answers by (clip, mask fingerprint): no (clip, mask) pair is evaluated twice
        self.answers: dict[tuple[int, float, float], np.ndarray] = {}
        self.reused = 0  # requests answered from `answers` instead of the model
        self._weights: dict[int, torch.Tensor] = {}

    def space_of(self, clip: int) -> FFTSpace | STFTSpace:
        return self.spaces[self.group[clip]]

    def _count(self, clip: np.ndarray, phase: str) -> None:
        counts = np.bincount(clip, minlength=self.n_clips)
        self.queries += counts
        self.by_phase.setdefault(phase, np.zeros(self.n_clips, dtype=np.int64))
        self.by_phase[phase] += counts

    def magnitude(self) -> torch.Tensor:
        """(n_clips, width) coefficient magnitudes on the device (-inf past a clip's vars)."""
        out = torch.full((self.n_clips, self.width), -torch.inf, device=self.device)
        for g, space in enumerate(self.spaces):
            members = torch.as_tensor(np.flatnonzero(self.group == g), device=self.device)
            out[members, : space.n_vars] = space.magnitude_order_key(self.coeffs[g]).float()
        return out

    @torch.inference_mode()
    def originals(self) -> torch.Tensor:
        """Probabilities (n_clips, n_labels) of the unmasked clips, on the host.

        They also answer any later request for a clip's full mask."""
        out = torch.empty((self.n_clips, self.classifier.n_labels), device=self.device)
        for g, batch in enumerate(self.waves):
            members = torch.as_tensor(np.flatnonzero(self.group == g), device=self.device)
            for i in range(0, len(batch), self.batch_size):
                out[members[i : i + self.batch_size]] = self.classifier(
                    batch[i : i + self.batch_size]
                )
        self._count(np.arange(self.n_clips), "original")
        host = out.float().cpu()
        for i in range(self.n_clips):
            n_vars = int(self.n_vars[i])
            full = self._fingerprint(torch.ones((1, n_vars), dtype=torch.bool, device=self.device))
            self.answers[(i, *full[0].tolist())] = host[i].numpy()
        return host

    def run(self, requests: MaskRequests, phase: str, fresh: bool = False) -> torch.Tensor:
        """Probabilities (n_requests, n_labels) of the requested mutants, on the host."""
        return self.run_many([(requests, phase)], fresh=fresh)[0]

    @torch.inference_mode()
    def run_many(
        self, jobs: list[tuple[MaskRequests, str]], fresh: bool = False
    ) -> list[torch.Tensor]:
        """Probabilities of several request sets, evaluated as one stream.

        A (clip, mask) pair asked before, or twice in this call, is answered once: every
        request's mask is fingerprinted on the device first and only new pairs go to the
        model. `fresh` evaluates every request anew and leaves the answers alone (for
        deliberate re-verification).
        """
        self.rounds += 1
        keys = [self._keys(req) for req, _ in jobs]
        todo: list[np.ndarray] = []
        claimed: set = set()
        for job_keys in keys:
            rows = []
            for r, key in enumerate(job_keys):
                if fresh or (key not in self.answers and key not in claimed):
                    rows.append(r)
                    claimed.add(key)
            todo.append(np.asarray(rows, dtype=np.int64))
        evaluated = self._evaluate(
            [req.take(rows) for (req, _), rows in zip(jobs, todo, strict=True)]
        )
        results = []
        for (req, phase), job_keys, rows, out in zip(jobs, keys, todo, evaluated, strict=True):
            self._count(req.clip[rows], phase)
            self.reused += len(job_keys) - len(rows)
            if fresh:
                results.append(out)
                continue
            for key, row in zip((job_keys[r] for r in rows), out.numpy(), strict=True):
                self.answers[key] = row
            results.append(torch.from_numpy(np.stack([self.answers[k] for k in job_keys]))
                           if job_keys else out)  # fmt: skip
        return results

    def _fingerprint(self, masks: torch.Tensor) -> torch.Tensor:
        """Two exact float64 fingerprints per mask row: sums of fixed random integer
        weights (< 2**31) over the kept variables. Every partial sum is an integer below
        2**53, so the value is exact whatever order the device adds in, and two different
        masks share both fingerprints with odds of about 2**-62."""
        n_vars = masks.shape[1]
        if n_vars not in self._weights:
            gen = torch.Generator().manual_seed(n_vars)
            w = torch.randint(0, 2**31, (n_vars, 2), generator=gen, dtype=torch.int64)
            self._weights[n_vars] = w.to(self.device, torch.float64)
        return masks.to(torch.float64) @ self._weights[n_vars]

    def _keys(self, requests: MaskRequests) -> list[tuple[int, float, float]]:
        """(clip, fingerprint) per request, in request order (one host sync)."""
        groups = self.group[requests.clip]
        order = np.argsort(groups, kind="stable")
        dev = _DeviceRequests(requests.take(order), self.local, self.device)
        prints = torch.empty((len(order), 2), dtype=torch.float64, device=self.device)
        for g in np.unique(groups):
            a, b = (int(x) for x in np.searchsorted(groups[order], [g, g + 1]))
            for lo in range(a, b, self.batch_size):
                hi = min(lo + self.batch_size, b)
                prints[lo:hi] = self._fingerprint(dev.build(lo, hi, self.spaces[g].n_vars))
        host = np.empty((len(order), 2))
        host[order] = prints.cpu().numpy()
        return [(c, a, b) for c, (a, b) in zip(requests.clip.tolist(), host.tolist(), strict=True)]

    def _evaluate(self, sets: list[MaskRequests]) -> list[torch.Tensor]:
        """Probabilities of every request of every set, on the host.

        Mutants of all sets and all clips of one length are packed together into
        batches of `batch_size` (so independent searches share full batches); masks,
        spectrum products, inverse transforms and the model all run on the device,
        which is synchronised once, when the probabilities come back.
        """
        n_labels = self.classifier.n_labels
        prepared = []
        for requests in sets:
            groups = self.group[requests.clip]
            order = np.argsort(groups, kind="stable")
            dev = _DeviceRequests(requests.take(order), self.local, self.device)
            out = torch.empty((len(order), n_labels), device=self.device)
            prepared.append((dev, groups[order], order, out))
        all_groups = np.unique(np.concatenate([p[1] for p in prepared] or [np.zeros(0, int)]))
        for g in all_groups:
            pieces: list[tuple[int, int, int]] = []
            filled = 0
            for j, (_, sorted_groups, _, _) in enumerate(prepared):
                a, b = (int(x) for x in np.searchsorted(sorted_groups, [g, g + 1]))
                while a < b:
                    take = min(b - a, self.batch_size - filled)
                    pieces.append((j, a, a + take))
                    filled, a = filled + take, a + take
                    if filled == self.batch_size:
                        self._forward(g, pieces, prepared)
                        pieces, filled = [], 0
            if pieces:
                self._forward(g, pieces, prepared)
        results = []
        for _, _, order, out in prepared:
            unsorted = torch.empty_like(out)
            unsorted[torch.as_tensor(order, device=self.device)] = out
            results.append(unsorted.float().cpu())
        return results

    def _forward(self, g: int, pieces: list[tuple[int, int, int]], prepared: list) -> None:
        """One model batch made of request ranges (set j, rows lo..hi) of length group g."""
        space, coeffs = self.spaces[g], self.coeffs[g]
        masks = [prepared[j][0].build(lo, hi, space.n_vars) for j, lo, hi in pieces]
        local = [prepared[j][0].local[lo:hi] for j, lo, hi in pieces]
        if len(pieces) == 1:
            mutant = coeffs[local[0]] * space.expand(masks[0])
        else:
            mutant = coeffs[torch.cat(local)] * space.expand(torch.cat(masks))
        probs = self.classifier(space.inverse(mutant).float())
        self.batches += 1
        offset = 0
        for j, lo, hi in pieces:
            prepared[j][3][lo:hi] = probs[offset : offset + hi - lo]
            offset += hi - lo
