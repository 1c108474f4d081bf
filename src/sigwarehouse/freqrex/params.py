"""Every knob of the freqrex search, with its default, in one frozen dataclass.

This module imports nothing heavy, so ingestion can build, store and hash parameters
without loading torch. `FreqrexParams.to_dict()` is what the warehouse stores next to
each explanation; `FreqrexParams.hash()` names that parameter set.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

# Fields that change how fast the search runs but not what it finds (up to float noise
# of batched model evaluation); they are stored but left out of the hash. `dtype` is
# one of them because every mask the search returns is verified in float32, and a clip
# whose mask fails there is searched again in float32 (freqrex.engine), so a stored
# result holds in float32 whatever precision the search ran in.
RUNTIME_FIELDS = frozenset({"batch_size", "dtype"})

# The compute dtypes a model's network may run in during the search.
DTYPES = ("float32", "bfloat16", "float16")

# The version of the search itself, part of every parameter hash, so rows made by an
# earlier engine never mix with this one's. 1: until 2026-12 (batch-dependent seeds, no
# complete search where the empty signal keeps the class, minimality over 8 groups of
# bins). 2: batch-independent, complete search on every clip, 1-minimal per bin up to
# 512 bins after two certifications. 3: group testing at every granularity down to a
# few bins per unit, guided by the slack each removal leaves; certification repeated
# until none removable (up to 8 rounds); 1-minimal per bin up to 1024 bins. 4: the
# sample behind a large mask's minimality figure is drawn from the clip's own seed (it
# was drawn from its row in the batch), and slacks are rounded before they order
# candidates, so that no stored figure depends on which clips share a batch. 5: the
# prefix search narrows its bracket after a round in which every size failed (4 asked
# the same sizes again in later rounds; the same masks at the default grid_rounds = 2).
# 6: variables of at most `variable_hz` Hz (several bins each on clips longer than
# 1 / variable_hz s); the complete search starts from the certified sufficient mask; a
# delta-completeness test asks first the half (mask or complement) that has decided more
# of the clip's failures; group testing no longer ends a level with a round that only
# tests, and stops refining a mask that stays far above per_bin_limit. 7: responsibility
# trees halve bands (n_parts 2, min_band_bins 8; were 3 and 16), and the variable-level
# elimination breaks ties in responsibility by ascending magnitude (was: bin order).
# 8: `sigwh ingest` searches each model from its measured rendering noise floor
# (noise_floor.py: the decision margin starts there, not at decision_margin), and every
# returned mask is verified in each rendering of freqrex.renderings.
ALGORITHM_VERSION = 8


@dataclass(frozen=True)
class FreqrexParams:
    """Parameters of one freqrex explanation run (all have defaults).

    Responsibility (ReX-style, over contiguous rfft-bin bands):
      seed: seeds every random split; a clip's splits depend only on the seed and the
        clip's samples, so an explanation does not depend on which clips share a batch.
      iterations: independent random refinement trees per clip; their maps are averaged.
      n_parts: parts a band is cut into at each refinement step (ReX uses 4). Engine 7
        halves bands (2): the grow-and-minimise search after the maps does the fine
        work, and halving gave the same or smaller sufficient sets at a third to a half
        of the responsibility queries of 3 (bench_vs_rex, three models); every
        non-empty proper combination of parts is queried (2**n_parts - 2 mutants),
        plus the combination with none of them where that is not the empty signal.
      min_band_bins: the narrowest part a split may create; a band narrower than
        n_parts * min_band_bins is not split further.
      max_depth: the most refinement levels per tree.
      max_split_bands: at most this many of a node's bands (the widest) are split per
        level; the rest stay kept as they are (bounds the cost when evidence is spread).
      queue_len: passing mutants refined further at each level (smallest kept
        bandwidth first, as ReX's area queue).
      confidence_filter: a mutant counts as passing only if it keeps class c with
        p[c] >= confidence_filter * sigma (0 = top-1 only, the paper's definition).

    Search (grow a mask in responsibility order, then minimise):
      delta: the delta of delta-completeness: p[c] >= delta * sigma on the mask.
      sufficient_confidence: extra requirement p[c] >= this * sigma on sufficient
        masks (0 = the paper's top-1-only definition).
      grid_size: candidate prefix sizes evaluated in one batch per search round
        (round one geometric over all bins, later rounds linear inside the bracket).
      grid_rounds: search rounds before minimisation.
      minimise_units: minimisation first cuts the mask's kept bins into this many groups
        of consecutive kept bins ("units"), then into four times as many, and so on while
        a unit holds more than 4 bins (group testing, coarse to fine); then bin by bin.
      minimise_rounds: the most rounds per unit granularity. A round tests every
        single-unit removal in one batch, then removes together as many of the
        removable units as still hold (those whose removal leaves the most slack first).
      certify_rounds: the variable level drops kept variables (in chunks that double
        while removals hold), then tests every single-variable removal of the result at
        once (a certification); what that finds removable (the property is not
        monotone) is dropped again, up to this many full certifications. The last one
        is the stored figure: the share of kept variables removable alone (0 =
        1-minimal per variable).
      per_bin_limit: masks with more kept variables than this after the unit levels
        are not minimised one variable at a time: the cost grows with the mask (each
        certification retests every kept variable; the property is not monotone).
        Their removable share is measured on a seeded sample of 64 kept variables
        instead.
      decision_margin: a mask keeps class c only if p[c] beats every other class by at
        least this much (and likewise for "does not keep c", and for the delta
        threshold), so a result cannot flip under float noise of a different batch.

    Variables:
      variable_hz: the widest a variable of the "fft" space may be, in Hz. A clip of d
        seconds has rfft bins 1/d Hz apart; each variable holds floor(d * variable_hz)
        consecutive bins (at least one), so at 1 Hz clips shorter than 2 s are searched
        bin by bin and a 30 s clip has as many variables (about sample_rate / 2) as a
        1 s one. The search, its minimality and its figures are over these variables;
        stored masks and maps are per bin all the same.

    Beyond the paper:
      n_sufficient: how many pairwise-disjoint sufficient masks to look for per clip
        (1 = the paper's single explanation).
      space: "fft" (one variable per rfft bin of the whole clip) or "stft" (one per
        time-frequency cell of a short-time Fourier transform).
      stft_n_fft, stft_hop: the STFT frame length and hop, in samples ("stft" only).
      fill: value a removed variable is set to; only "zero" (the paper's) for now.

    Version (hashed, not a knob):
      algorithm: the engine version that made the explanation (ALGORITHM_VERSION);
        explain refuses any other, since an earlier engine cannot be re-run.

    Runtime only (not hashed):
      batch_size: mutants per model forward pass.
      dtype: the precision the explained model's network runs in during the search
        ("float32", "bfloat16", "float16"; None: the device's default, bfloat16 on CUDA
        and float32 on the CPU, which a job resolves and stores). Originals, the empty
        signal and the verification of every returned mask run in float32.
    """

    seed: int = 0
    iterations: int = 4
    n_parts: int = 2
    min_band_bins: int = 8
    max_depth: int = 10
    max_split_bands: int = 2
    queue_len: int = 1
    confidence_filter: float = 0.0
    delta: float = 0.5
    sufficient_confidence: float = 0.0
    grid_size: int = 12
    grid_rounds: int = 2
    minimise_units: int = 8
    minimise_rounds: int = 4
    certify_rounds: int = 8
    per_bin_limit: int = 1024
    decision_margin: float = 1e-4
    variable_hz: float = 1.0
    n_sufficient: int = 1
    space: str = "fft"
    stft_n_fft: int = 512
    stft_hop: int = 128
    fill: str = "zero"
    algorithm: int = ALGORITHM_VERSION
    batch_size: int = 64
    dtype: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.n_parts >= 2, "n_parts must be >= 2"),
            (self.n_parts <= 6, "n_parts must be <= 6 (2**n_parts mutants per split)"),
            (self.min_band_bins >= 1, "min_band_bins must be >= 1"),
            (self.max_depth >= 1, "max_depth must be >= 1"),
            (self.max_split_bands >= 1, "max_split_bands must be >= 1"),
            (self.queue_len >= 1, "queue_len must be >= 1"),
            (0.0 <= self.confidence_filter <= 1.0, "confidence_filter must be in [0, 1]"),
            (0.0 < self.delta <= 1.0, "delta must be in (0, 1]"),
            (0.0 <= self.sufficient_confidence <= 1.0, "sufficient_confidence in [0, 1]"),
            (self.grid_size >= 2, "grid_size must be >= 2"),
            (self.grid_rounds >= 1, "grid_rounds must be >= 1"),
            (self.minimise_units >= 1, "minimise_units must be >= 1"),
            (self.minimise_rounds >= 1, "minimise_rounds must be >= 1"),
            (self.certify_rounds >= 1, "certify_rounds must be >= 1"),
            (self.per_bin_limit >= 64, "per_bin_limit must be >= 64"),
            (0.0 <= self.decision_margin < math.inf, "decision_margin must be >= 0 and finite"),
            (0.0 < self.variable_hz < math.inf, "variable_hz must be > 0 and finite"),
            (self.n_sufficient >= 1, "n_sufficient must be >= 1"),
            (self.space in ("fft", "stft"), "space must be 'fft' or 'stft'"),
            (self.stft_n_fft >= 8, "stft_n_fft must be >= 8"),
            (self.stft_hop >= 1, "stft_hop must be >= 1"),
            (self.fill == "zero", "fill must be 'zero'"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.dtype is None or self.dtype in DTYPES, f"dtype must be one of {DTYPES}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        """All parameters as a plain JSON-able dict (what the warehouse stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FreqrexParams:
        """Rebuild from `to_dict()` output; refuses unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown freqrex parameters: {sorted(unknown)}")
        return cls(**values)

    def hash(self) -> str:
        """A short stable hash of the parameters that affect results (16 hex digits)."""
        identity = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Named parameter sets (`sigwh ingest --preset NAME`). "default" gives the figures to
# publish: masks certified 1-minimal per variable up to 1024 kept variables. "quick" is
# the demo's: it averages two responsibility trees instead of four and certifies one
# variable at a time only masks of up to 256 kept variables (larger ones get a sampled
# figure). Its masks meet the same definitions (sufficient, delta-complete, verified);
# where they are certified they are 1-minimal as the default's are, and
# `explanations.minimality` says how far each is from it.
PRESETS: dict[str, FreqrexParams] = {
    "default": FreqrexParams(),
    "quick": FreqrexParams(iterations=2, per_bin_limit=256),
}
