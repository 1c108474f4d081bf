"""`explain` and its input conversion, pinned on toy models whose answers follow by hand.

The models (`BinRule`) read which rfft bins a signal holds and answer two classes,
"target" and "other", by a stated rule over those bins. The clips are impulses, whose
rfft is exactly 1 in every bin (and whose bins all have the same magnitude), so a
masked clip holds exactly the mask's bins, and every probability is dyadic. With that,
each test states what `explain` must return, derived in the comments:

- `_as_waves`: tensors stay tensors (whatever their dtype, with or without grad), and
  anything else is read through numpy (an object that only offers `__array__` too);
- the model is never asked more than `batch_size` signals at once;
- the empty signal suffices only when it reaches `sufficient_confidence * sigma` (and
  beats the other class by the margin, not by `sufficient_confidence`);
- a mask found in lower precision that fails the float32 verification is searched again
  in float32; a float32 search never asks for that retry, even when its mask fails;
- the complete mask handed to minimisation is the grown prefix itself (no bin more): a
  model where one more bin changes what minimisation can reach.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from sigwarehouse.freqrex import FreqrexParams, explain
from sigwarehouse.freqrex.engine import EMPTY_KEEPS, _as_waves
from sigwarehouse.models import precision
from sigwarehouse.models.base import AudioClassifier

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

N_VARS = 16  # rfft bins of a 30-sample clip
LIGHT = {"iterations": 1, "certify_rounds": 2}


class BinRule(AudioClassifier):
    """Two classes, "target" and "other": p[target] = rule(bins the signal holds)."""

    def __init__(self, rule: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__(["target", "other"], 16000)
        self.rule = rule
        self.batches: list[int] = []  # how many signals each call was asked about

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        held = torch.fft.rfft(waves.double(), dim=-1).abs() > 0.5  # each bin is 0 or 1
        self.batches.append(len(held))
        p = self.rule(held).double()
        return torch.stack([p, 1 - p], dim=1).float()


class TwoMinds(BinRule):
    """Answers by `float32_rule` inside `precision.float32_only()` (where the engine asks
    for the originals, the empty signal and the verification) and by `search_rule`
    elsewhere: a model whose lower-precision answers differ from its float32 ones (as
    tests/precision_models.py's HiddenOffset), with a `dtype` the test sets."""

    def __init__(self, float32_rule: Callable, search_rule: Callable, dtype: torch.dtype):
        super().__init__(float32_rule)
        self.search_rule = search_rule
        self.dtype = dtype

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if not precision.in_float32_only():
            held = torch.fft.rfft(waves.double(), dim=-1).abs() > 0.5
            self.batches.append(len(held))
            p = self.search_rule(held).double()
            return torch.stack([p, 1 - p], dim=1).float()
        return super().forward(waves)


def needs(*bins: int) -> Callable:
    """The target wins (3/4 against 1/4) exactly when every one of `bins` is held."""
    return lambda held: torch.where(held[:, list(bins)].all(dim=1), 0.75, 0.25)


def impulse(n_vars: int = N_VARS) -> torch.Tensor:
    wave = torch.zeros(2 * (n_vars - 1))
    wave[0] = 1.0  # rfft: exactly 1 in every bin
    return wave


def bins(mask) -> list[int]:
    return np.flatnonzero(mask).tolist()


# --- _as_waves -------------------------------------------------------------------------


class ArrayLike:
    """Offers its samples only through numpy's `__array__` protocol (as array
    containers of other libraries do); torch.as_tensor alone cannot read it."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)


def test_as_waves_reads_a_non_tensor_wave_through_numpy():
    [got] = _as_waves([ArrayLike([0.5, -0.25, 0.125])])
    assert torch.is_tensor(got)
    assert got.tolist() == [0.5, -0.25, 0.125]  # float64 from numpy, values exact
    [lst] = _as_waves([[1.0, 2.0]])
    assert lst.tolist() == [1.0, 2.0]


def test_as_waves_keeps_a_tensor_wave_a_tensor_whatever_its_dtype_or_grad():
    # bfloat16 has no numpy dtype, and a tensor that requires grad refuses .numpy():
    # both must reach the engine as tensors, with their values (exact in bfloat16)
    half = torch.tensor([0.5, -0.25, 0.125], dtype=torch.bfloat16)
    grad = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    got_half, got_grad = _as_waves([half, grad])
    assert got_half.dtype == torch.bfloat16 and got_half.tolist() == [0.5, -0.25, 0.125]
    assert got_grad.tolist() == [1.0, 2.0, 3.0]


def test_explain_takes_a_list_of_bfloat16_tensor_waves_like_their_float32_values():
    # the impulse is exact in bfloat16, so both runs explain the same samples
    model = BinRule(needs(3))
    params = FreqrexParams(**LIGHT)
    [a] = explain(model, [impulse().to(torch.bfloat16)], params)
    [b] = explain(BinRule(needs(3)), [impulse()], params)
    assert bins(a.sufficient_mask) == bins(b.sufficient_mask) == [3]


# --- batch size ------------------------------------------------------------------------


def test_no_model_call_holds_more_than_batch_size_signals():
    model = BinRule(needs(3))
    stats: dict = {}
    [ex] = explain(model, [impulse()], FreqrexParams(batch_size=3, **LIGHT), stats)
    assert bins(ex.sufficient_mask) == [3]
    assert max(model.batches) == 3  # full batches of 3, never more
    assert stats["batches"] == len(model.batches) - 1  # every call but the original's


# --- the empty signal and sufficient_confidence ----------------------------------------


def confident_with_bin3(held: torch.Tensor) -> torch.Tensor:
    """p[target] = 1 with bin 3 held, 3/4 without it: the target is always top-1."""
    return torch.where(held[:, 3], 1.0, 0.75)


def test_empty_signal_below_sufficient_confidence_is_not_sufficient():
    # sigma = 1 (the whole clip holds bin 3); the empty signal: 0.75 < 0.9 * 1 + 1e-4,
    # so it does not suffice although the target is its top-1 by 0.5; the search then
    # keeps bin 3 (p = 1 >= 0.9), one bin, nothing to minimise
    params = FreqrexParams(sufficient_confidence=0.9, **LIGHT)
    [ex] = explain(BinRule(confident_with_bin3), [impulse()], params)
    assert ex.confidence == 1.0
    assert ex.empty_probs.tolist() == [0.75, 0.25]
    assert ex.sufficient_reason is None
    assert bins(ex.sufficient_mask) == [3]


def test_empty_signal_suffices_on_its_ratio_not_on_a_margin_of_that_size():
    # sufficient_confidence 0.6: the empty signal's 0.75 >= 0.6 * 1 + 1e-4, and it
    # beats "other" by 0.5 >= 1e-4: it suffices (0.5 < 0.6: a margin of 0.6 would not)
    params = FreqrexParams(sufficient_confidence=0.6, **LIGHT)
    [ex] = explain(BinRule(confident_with_bin3), [impulse()], params)
    assert ex.sufficient_reason == EMPTY_KEEPS
    assert bins(ex.sufficient_mask) == []
    assert ex.sufficient_mask.shape == (N_VARS,)


# --- lower precision and the float32 retry ---------------------------------------------


def test_a_lower_precision_mask_failing_float32_verification_is_searched_again():
    # search rule (bfloat16): bin 3 alone decides -> sufficient {3}, complete {3};
    # float32 (originals, verification): bins 3 and 5 both needed, so {3} fails there;
    # the retry, all in float32, finds {3, 5} for both (neither bin alone keeps it, and
    # the complement of {3, 5} lacks both: "other")
    model = TwoMinds(needs(3, 5), needs(3), torch.bfloat16)
    [ex] = explain(model, [impulse()], FreqrexParams(**LIGHT))
    assert ex.float32_retry is True
    assert ex.searched_in == "float32"
    assert bins(ex.sufficient_mask) == [3, 5] and ex.sufficient_reason is None
    assert bins(ex.complete_mask) == [3, 5] and ex.complete_reason is None
    assert ex.queries_by_phase["bfloat16-search"] > 0
    assert ex.minimality["float32_retry"] is True


def test_a_float32_search_never_asks_for_a_float32_retry():
    # the same model said to run in float32: no retry, so the masks found by the search
    # rule ({3}) fail the verification and are dropped with that reason
    model = TwoMinds(needs(3, 5), needs(3), torch.float32)
    [ex] = explain(model, [impulse()], FreqrexParams(**LIGHT))
    assert ex.searched_in == "float32"
    assert ex.float32_retry is False
    assert ex.sufficient_mask is None and ex.sufficient_reason == "verification-failed"
    assert ex.complete_mask is None and ex.complete_reason == "verification-failed"
    # and a float32 model whose masks pass: no retry either
    [ok] = explain(BinRule(needs(3)), [impulse()], FreqrexParams(**LIGHT))
    assert ok.float32_retry is False and ok.minimality["float32_retry"] is False


# --- the grown prefix is what minimisation starts from ---------------------------------


def other_on_one_of_bins_0_1(held: torch.Tensor) -> torch.Tensor:
    """ "other" wins (3/4) exactly when bins 2..15 are all held and exactly one of bins
    0 and 1; the target (3/4) everywhere else, the empty signal included."""
    one_of = held[:, 0] ^ held[:, 1]
    return torch.where(held[:, 2:].all(dim=1) & one_of, 0.25, 0.75)


def test_complete_mask_minimises_the_grown_prefix_and_not_one_bin_more():
    # The empty signal keeps the target: the sufficient mask is empty and responsibility
    # is all zero, so the complete search ranks by magnitude, all equal on an impulse:
    # bin b at position b. Prefix 1 = {0}: keeps the target (3/4 >= 0.5 * 3/4) and its
    # complement {1..15} is "other": complete, the smallest size. Its only removal (the
    # empty mask, complement = the whole clip, the target) fails: {0} is returned.
    # (Starting from {0, 1} instead, dropping bin 0 first leaves {1}, also complete.)
    [ex] = explain(BinRule(other_on_one_of_bins_0_1), [impulse()], FreqrexParams(**LIGHT))
    assert ex.sufficient_reason == EMPTY_KEEPS
    assert ex.complete_reason is None
    assert bins(ex.complete_mask) == [0]
    assert ex.complete_probs.tolist() == [0.75, 0.25]
    assert ex.inverse_probs.tolist() == [0.25, 0.75]
