"""The search engine at its edges: decisions exactly on their thresholds, parameters at
their limits, odd clip lengths, a model that answers Inf or NaN, a model that changes its
mind before the final verification, and the query count it reports about itself.

Each property is checked independently of the engine: exact dyadic numbers for the
thresholds, plain FFTs and direct model calls for the masks, a counting wrapper for the
queries.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from reference import fft_signal

from sigwarehouse.freqrex import FreqrexParams, explain, signals_for
from sigwarehouse.freqrex.params import DTYPES
from sigwarehouse.freqrex.toy import tone_set, train_tone_classifier
from sigwarehouse.freqrex.verdict import keeps, rejects, slack

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

LIGHT = {"iterations": 2, "certify_rounds": 3, "per_bin_limit": 64}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return train_tone_classifier(n_samples=4000, seed=0)


def _rows(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# --- decisions exactly on their thresholds (dyadic numbers: no rounding anywhere) -------


def test_keeps_counts_a_row_exactly_on_the_margin_as_kept():
    probs = _rows([0.625, 0.375], [0.375, 0.625], [0.5, 0.5])
    target = np.array([0, 0, 0])
    sigma = np.ones(3)
    assert keeps(probs, target, sigma, 0.25).tolist() == [True, False, False]
    assert keeps(probs, target, sigma, 0.0).tolist() == [True, False, True]  # a tie keeps
    assert keeps(probs, target, sigma, 0.25 + 2**-20).tolist() == [False, False, False]


def test_keeps_with_a_ratio_needs_p_at_least_ratio_sigma_plus_margin():
    probs = _rows([0.625, 0.375], [0.625, 0.375], [0.625, 0.375])
    target = np.zeros(3, dtype=int)
    sigma = np.array([1.0, 1.0 + 2**-10, 0.5])
    # 0.625 >= 0.375 * 1.0 + 0.25 exactly; a hair more sigma fails; half sigma passes
    assert keeps(probs, target, sigma, 0.25, 0.375).tolist() == [True, False, True]
    # min_ratio 0 means no confidence test at all, whatever sigma is
    assert keeps(probs, target, np.full(3, 100.0), 0.25, 0.0).all()


def test_rejects_counts_a_row_exactly_on_the_margin_as_rejected():
    probs = _rows([0.375, 0.625], [0.5, 0.5], [0.625, 0.375], [0.25, 0.25])
    target = np.array([0, 0, 0, 0])
    assert rejects(probs, target, 0.25).tolist() == [True, False, False, False]
    assert rejects(probs, target, 0.0).tolist() == [True, True, False, True]


def test_slack_is_the_distance_to_each_threshold():
    probs = _rows([0.625, 0.25, 0.125], [0.25, 0.5, 0.25])
    target = np.array([0, 0])
    sigma = np.array([1.0, 1.0])
    np.testing.assert_array_equal(slack(probs, target, sigma, 0.125), [0.25, -0.375])
    # with a ratio: the smaller of the two distances (0.625 - 0.5 - 0.125 = 0)
    np.testing.assert_array_equal(slack(probs, target, sigma, 0.125, 0.5), [0.0, -0.375])
    np.testing.assert_array_equal(slack(probs, target, sigma, 0.125, reject=True), [-0.5, 0.125])


def test_one_class_models_keep_and_never_reject():
    """With one class there is no other to beat: every row keeps it, however small its
    probability (no confidence test unless a ratio asks for one), and none rejects it."""
    probs = _rows([1.0], [0.5], [0.125])
    target = np.zeros(3, dtype=int)
    assert keeps(probs, target, np.ones(3), 0.25).all()
    assert keeps(probs, target, np.ones(3), 0.25, 0.25).tolist() == [True, True, False]
    assert not rejects(probs, target, 0.0).any()
    assert (slack(probs, target, np.ones(3), 0.25) == np.inf).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_row_is_neither_kept_nor_rejected(bad):
    probs = _rows([bad, 0.25], [0.75, bad], [0.75, 0.25])
    target = np.zeros(3, dtype=int)
    sigma = np.ones(3)
    assert keeps(probs, target, sigma, 0.0).tolist() == [False, False, True]
    assert keeps(probs, target, sigma, 0.0, 0.5).tolist() == [False, False, True]
    assert rejects(probs, target, 0.0).tolist() == [False, False, False]
    room = slack(probs, target, sigma, 0.0)
    assert room[0] == room[1] == -np.inf and room[2] == 0.5


# --- parameters at their limits ---------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["confidence_filter", "delta", "sufficient_confidence", "decision_margin"],
)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_are_refused(field, bad):
    with pytest.raises(ValueError, match=field):
        FreqrexParams(**{field: bad})


# (field, the last value accepted, the first refused, the message that refuses it)
LIMITS = [
    ("iterations", 1, 0, "iterations must be >= 1"),
    ("n_parts", 2, 1, "n_parts must be >= 2"),
    ("n_parts", 6, 7, "n_parts must be <= 6 (2**n_parts mutants per split)"),
    ("min_band_bins", 1, 0, "min_band_bins must be >= 1"),
    ("max_depth", 1, 0, "max_depth must be >= 1"),
    ("max_split_bands", 1, 0, "max_split_bands must be >= 1"),
    ("queue_len", 1, 0, "queue_len must be >= 1"),
    ("confidence_filter", 0.0, -(2**-20), "confidence_filter must be in [0, 1]"),
    ("confidence_filter", 1.0, 1 + 2**-20, "confidence_filter must be in [0, 1]"),
    ("delta", 2**-20, 0.0, "delta must be in (0, 1]"),
    ("delta", 1.0, 1 + 2**-20, "delta must be in (0, 1]"),
    ("sufficient_confidence", 0.0, -(2**-20), "sufficient_confidence in [0, 1]"),
    ("sufficient_confidence", 1.0, 1 + 2**-20, "sufficient_confidence in [0, 1]"),
    ("grid_size", 2, 1, "grid_size must be >= 2"),
    ("grid_rounds", 1, 0, "grid_rounds must be >= 1"),
    ("minimise_units", 1, 0, "minimise_units must be >= 1"),
    ("minimise_rounds", 1, 0, "minimise_rounds must be >= 1"),
    ("certify_rounds", 1, 0, "certify_rounds must be >= 1"),
    ("per_bin_limit", 64, 63, "per_bin_limit must be >= 64"),
    ("decision_margin", 0.0, -(2**-20), "decision_margin must be >= 0 and finite"),
    ("n_sufficient", 1, 0, "n_sufficient must be >= 1"),
    ("space", "stft", "mel", "space must be 'fft' or 'stft'"),
    ("stft_n_fft", 8, 7, "stft_n_fft must be >= 8"),
    ("stft_hop", 1, 0, "stft_hop must be >= 1"),
    ("fill", "zero", "mean", "fill must be 'zero'"),
    ("batch_size", 1, 0, "batch_size must be >= 1"),
]


@pytest.mark.parametrize("dtype", [None, *DTYPES])
def test_every_precision_the_engine_runs_in_is_accepted_and_no_other(dtype) -> None:
    assert FreqrexParams(dtype=dtype).dtype == dtype
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'bfloat16'"):
        FreqrexParams(dtype="float64")


@pytest.mark.parametrize(("field", "last_ok", "first_bad", "message"), LIMITS)
def test_each_parameter_is_accepted_up_to_its_limit_and_refused_past_it(
    field, last_ok, first_bad, message
):
    edge = FreqrexParams(**{field: last_ok})
    assert getattr(FreqrexParams.from_dict(edge.to_dict()), field) == last_ok
    with pytest.raises(ValueError) as refused:
        FreqrexParams(**{field: first_bad})
    assert str(refused.value) == message


# --- odd clip lengths -------------------------------------------------------------------


def test_signals_of_odd_length_clips_keep_their_length_and_match_irfft():
    rng = np.random.default_rng(0)
    for n in (3999, 4001, 7):
        wave = torch.from_numpy(rng.normal(size=(2, n)).astype(np.float32))
        masks = rng.random((2, n // 2 + 1)) < 0.5
        got = signals_for(wave, masks)
        assert got.shape == (2, n)
        want = torch.stack([fft_signal(w, m) for w, m in zip(wave, masks, strict=True)])
        torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0)
        # the whole mask gives the clip back, the last sample included
        torch.testing.assert_close(signals_for(wave, np.ones_like(masks)), wave, atol=1e-5, rtol=0)


def test_masks_of_odd_length_clips_meet_their_definitions(model):
    waves, _ = tone_set(1, 4001, seed=9)  # 4001 and 3999 samples: 2001 and 2000 bins
    clips = [torch.from_numpy(waves[1]), torch.from_numpy(waves[3][:3999])]
    params = FreqrexParams(seed=1, **LIGHT)
    for wave, exp in zip(clips, explain(model, clips, params), strict=True):
        n = wave.shape[0]
        assert exp.n_samples == n and exp.n_vars == n // 2 + 1
        c, sigma = exp.label_index, exp.confidence
        p = model(fft_signal(wave, exp.sufficient_mask)[None].float())[0]
        assert int(p.argmax()) == c
        np.testing.assert_allclose(p.numpy(), exp.sufficient_probs, atol=1e-5)
        if exp.complete_mask is not None:
            kept = model(fft_signal(wave, exp.complete_mask)[None].float())[0]
            gone = model(fft_signal(wave, ~exp.complete_mask)[None].float())[0]
            assert int(kept.argmax()) == c and kept[c] >= params.delta * sigma
            assert int(gone.argmax()) != c


# --- models that misbehave --------------------------------------------------------------


class _Counting:
    """The model, counting the waveform rows it is asked about."""

    def __init__(self, model):
        self.model, self.rows, self.calls = model, 0, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, waves):
        self.rows += waves.shape[0]
        self.calls += 1
        return self.model(waves)


def test_the_reported_query_count_is_what_the_model_was_asked(model):
    waves, _ = tone_set(1, 4000, seed=7)
    counting = _Counting(model)
    stats = {}
    out = explain(counting, torch.from_numpy(waves), FreqrexParams(seed=1, **LIGHT), stats)
    assert counting.rows == sum(e.queries for e in out) == stats["queries"]
    assert counting.calls >= stats["batches"]
    for e in out:
        assert e.queries == sum(e.queries_by_phase.values())
        assert e.queries_by_phase["original"] == 1


class _ChangesItsMind(_Counting):
    """The model, answering honestly for `honest` calls, then with every row's
    probabilities shifted one class along: each mask's class changes."""

    def __init__(self, model, honest: int):
        super().__init__(model)
        self.honest = honest

    def __call__(self, waves):
        probs = super().__call__(waves)
        return probs if self.calls <= self.honest else probs.roll(1, dims=1)


def test_masks_that_fail_the_final_verification_are_dropped_with_a_reason(model):
    """The verification asks the model once more about every returned mask: a model that
    changes its mind there (as a stochastic or stateful model may) gets no masks."""
    waves, _ = tone_set(1, 4000, seed=7)
    # not the quiet clip: its complete mask is searched again with a wider margin (a
    # verdict that the 16-bit rendering changes), so its verification is not the last
    clips = torch.from_numpy(waves[1:])
    params = FreqrexParams(seed=1, **LIGHT)
    honest = _Counting(model)
    before = explain(honest, clips, params)
    assert not any(e.failed or e.decision_margin > params.decision_margin for e in before)
    verified = sum(e.queries_by_phase["verify"] for e in before)
    assert verified > 0
    # the verification is the last request of the run: the same masks in each of the
    # three renderings (freqrex.renderings), in full batches of one length
    last_honest_call = honest.calls - 3 * math.ceil(verified / 3 / params.batch_size)
    after = explain(_ChangesItsMind(model, last_honest_call), clips, params)
    failed = 0
    for b, a in zip(before, after, strict=True):
        if b.sufficient_reason is None:  # a mask was found, then failed verification
            assert a.sufficient_mask is None and a.sufficient_probs is None
            assert a.sufficient_reason == "verification-failed"
            assert a.sufficient_checked == 0 and np.isnan(a.sufficient_removable)
            failed += 1
        if b.complete_mask is not None:
            assert a.complete_mask is None and a.complete_probs is None
            assert a.inverse_probs is None and a.inverse_label_index is None
            assert a.complete_reason == "verification-failed"
            assert a.complete_checked == 0 and np.isnan(a.complete_removable)
            failed += 1
        else:
            assert a.complete_reason == b.complete_reason == "no-complete-mask-found"
    assert failed >= 4
    # everything before the verification was the same search
    for b, a in zip(before, after, strict=True):
        assert a.queries == b.queries
        np.testing.assert_array_equal(a.responsibility, b.responsibility)


class _NonFiniteOnMutants:
    """The model, answering `bad` for the target class on every signal that is not one of
    the original clips (a numerically fragile model on quiet or filtered input)."""

    def __init__(self, model, originals: np.ndarray, bad: float):
        self.model, self.bad = model, bad
        self.originals = {row.tobytes() for row in originals}

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, waves):
        probs = self.model(waves).clone()
        for i, row in enumerate(waves.numpy()):
            if row.tobytes() not in self.originals:
                probs[i, probs[i].argmax()] = self.bad
        return probs


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_answers_never_make_a_mask(model, bad):
    waves, _ = tone_set(1, 4000, seed=7)
    fragile = _NonFiniteOnMutants(model, waves, bad)
    out = explain(fragile, torch.from_numpy(waves), FreqrexParams(seed=1, **LIGHT))
    for e in out:
        assert np.isfinite(e.probs).all()
        assert e.sufficient_mask is None and e.complete_mask is None
        # the search finds nothing, or (for the whole spectrum, which it takes to keep
        # the class without asking) the verification refuses it
        assert e.sufficient_reason in ("no-sufficient-prefix", "verification-failed")
        assert e.complete_reason in ("no-complete-mask-found", "verification-failed")


def test_stored_signals_of_odd_length_clips_add_up_to_the_clip():
    """The NumPy path reports and analyses use: each signal keeps the clip's length, and
    the complete signal plus its inverse is the clip again (the masks split its spectrum)."""
    from sigwarehouse.freqrex.spectral import pack_mask
    from sigwarehouse.signals import fit_length, map_mask, stored_signals

    rng = np.random.default_rng(2)
    for n in (3999, 4001, 5):
        clip = rng.normal(size=n).astype(np.float32)
        bins = n // 2 + 1
        suff, comp = rng.random(bins) < 0.2, rng.random(bins) < 0.5
        out = stored_signals(clip, bins, pack_mask(suff), pack_mask(comp))
        assert {k: v.shape for k, v in out.items()} == {k: (n,) for k in out}
        want = np.fft.irfft(np.fft.rfft(clip.astype(np.float64)) * suff, n=n)
        np.testing.assert_allclose(out["sufficient"], want, atol=1e-6)
        np.testing.assert_allclose(out["complete"] + out["inverse"], clip, atol=1e-5)
        assert stored_signals(clip, bins, None, None) == {}
        # cropping and padding keep the first samples
        np.testing.assert_array_equal(fit_length(clip, n - 2), clip[: n - 2])
        np.testing.assert_array_equal(fit_length(clip, n + 3)[n:], np.zeros(3, np.float32))
    # a mask moved between odd lengths: a target bin is kept when a kept source bin lies
    # within half a target bin of its frequency (source bins i, target bins j, in Hz/rate)
    mask = np.zeros(2001, dtype=bool)
    mask[[0, 1000, 2000]] = True
    moved = map_mask(mask, 4001, 3999)
    assert moved.shape == (2000,)
    src = np.flatnonzero(mask) / 4001
    tgt = np.arange(2000) / 3999
    near = (src[None, :] >= tgt[:, None] - 0.5 / 3999) & (src[None, :] < tgt[:, None] + 0.5 / 3999)
    np.testing.assert_array_equal(moved, near.any(axis=1))
    assert moved[0] and moved[1999] and 1 <= moved[998:1002].sum() <= 2


def test_parameter_hashes_are_stable_across_versions_of_the_code():
    """A warehouse keys its rows by these hashes: the same parameters must hash the same
    in every release (the README's example hash included), whatever order the fields are
    written in."""
    assert FreqrexParams().hash() == "1a6326b74b0296dd"
    assert FreqrexParams(iterations=2).hash() == "dc04a62db986d0d0"
    shuffled = dict(reversed(list(FreqrexParams(iterations=2).to_dict().items())))
    assert FreqrexParams.from_dict(shuffled).hash() == "dc04a62db986d0d0"
    with pytest.raises(ValueError, match=r"unknown freqrex parameters: \['nope', 'zzz'\]"):
        FreqrexParams.from_dict({"zzz": 1, "nope": 2})


# --- the spaces' edges ------------------------------------------------------------------


def test_signals_for_takes_lists_and_says_what_is_wrong_with_bad_shapes():
    from sigwarehouse.freqrex.spectral import make_space

    rng = np.random.default_rng(4)
    waves = rng.normal(size=(3, 801)).astype(np.float32)
    masks = rng.random((3, 401)) < 0.5
    from_lists = signals_for([w for w in waves], [list(m) for m in masks])
    torch.testing.assert_close(from_lists, signals_for(torch.from_numpy(waves), masks))
    assert from_lists.dtype == torch.float32 and from_lists.shape == (3, 801)
    with pytest.raises(
        ValueError, match=r"expected waves shaped \(batch, samples\), got \(1, 3, 801\)"
    ):
        signals_for(torch.zeros(1, 3, 801), masks)
    with pytest.raises(
        ValueError, match=r"masks shaped \(2, 401\) do not match 3 clips of 401 variables"
    ):
        signals_for(torch.from_numpy(waves), masks[:2])
    assert make_space(801).shape == (401,)  # an rfft bin each, odd length included
    # an STFT space with a hop other than torch's default (n_fft / 4), against torch directly
    params = FreqrexParams(space="stft", stft_n_fft=128, stft_hop=48)
    space = make_space(801, params)
    assert space.shape == (65, 1 + 801 // 48) and space.n_vars == 65 * (1 + 801 // 48)
    stft_masks = rng.random((3, space.n_vars)) < 0.5
    window = torch.hann_window(128, dtype=torch.float64)
    want = []
    for w, m in zip(waves, stft_masks, strict=True):
        spec = torch.stft(torch.from_numpy(w).double(), 128, 48, window=window, return_complex=True)
        kept = spec * torch.from_numpy(m).reshape(spec.shape)
        want.append(torch.istft(kept, 128, 48, window=window, length=801))
    got = signals_for(torch.from_numpy(waves), stft_masks, params)
    torch.testing.assert_close(got, torch.stack(want).float(), atol=1e-5, rtol=0)


def test_an_stft_space_needs_at_least_one_window_of_samples():
    from sigwarehouse.freqrex.spectral import STFTSpace

    assert STFTSpace(128, n_fft=128, hop=32).n_frames == 5  # exactly one window: accepted
    with pytest.raises(ValueError, match="clip of 127 samples is shorter than n_fft=128"):
        STFTSpace(127, n_fft=128, hop=32)


def test_packed_masks_and_bands_at_their_edges():
    from sigwarehouse.freqrex import bands_to_mask, mask_to_bands, pack_mask, unpack_mask

    mask = unpack_mask(pack_mask(np.array([1, 0, 1], dtype=bool)), 3)
    assert mask.dtype == bool and mask.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="2 bytes do not pack 3 variables"):
        unpack_mask(b"\x00\x00", 3)
    # an empty band [3, 3) keeps nothing; a band must lie in 0..n
    empty = bands_to_mask([(3, 3), (0, 1)], 10)
    assert empty.dtype == bool and empty.tolist() == [True] + [False] * 9
    with pytest.raises(ValueError, match=r"band \[4, 11\) outside 0..10"):
        bands_to_mask([(4, 11)], 10)
    with pytest.raises(ValueError, match=r"band \[5, 4\) outside 0..10"):
        bands_to_mask([(5, 4)], 10)
    assert mask_to_bands(np.array([1, 1, 0, 1])) == [(0, 2), (3, 4)]  # ints are read as bools
    assert mask_to_bands(np.array([2, 0, 0.5])) == [(0, 1), (2, 3)]
    assert mask_to_bands(np.zeros(4, dtype=bool)) == []


# --- the engine's small pieces ----------------------------------------------------------


def test_a_clips_random_stream_is_seeded_from_its_float32_samples_the_same_in_every_release():
    """The seed of a clip's random splits: (seed, the first 8 bytes of the SHA-256 of its
    samples as float32, little-endian). Pinned: it decides every explanation."""
    from sigwarehouse.freqrex.engine import _clip_seed

    wave = torch.arange(5, dtype=torch.float64) / 8
    assert _clip_seed(wave, 7) == [7, 18331589875330678116]
    assert _clip_seed(wave.float(), 7) == _clip_seed(wave, 7)  # samples, not their dtype
    digest = hashlib.sha256((np.arange(5) / 8).astype("<f4").tobytes()).digest()
    assert _clip_seed(wave, 7)[1] == int.from_bytes(digest[:8], "little")


def test_explain_takes_numpy_waves_and_says_what_is_wrong_with_bad_ones(model):
    waves, _ = tone_set(1, 4000, seed=7)
    params = FreqrexParams(seed=1, **LIGHT)
    from_numpy = explain(model, [waves[1], waves[2][:3001]], params)
    from_torch = explain(model, [torch.from_numpy(waves[1]), torch.from_numpy(waves[2][:3001])],
                         params)  # fmt: skip
    for a, b in zip(from_numpy, from_torch, strict=True):
        np.testing.assert_array_equal(a.sufficient_mask, b.sufficient_mask)
        assert a.n_samples == b.n_samples and a.queries == b.queries
    with pytest.raises(ValueError) as bad:
        explain(model, torch.zeros(1, 2, 100), params)
    assert str(bad.value) == "expected waves shaped (batch, samples), got (1, 2, 100)"
    with pytest.raises(ValueError) as bad:
        explain(model, [np.zeros((2, 100), dtype=np.float32)], params)
    assert str(bad.value) == "each wave must be 1-D, got shape (2, 100)"
    assert explain(model, [], params) == []


def test_band_orders_rank_bins_low_first_or_high_first_within_each_clips_own_bins():
    """The complete search's fallback rankings: a grown prefix of the low-first order is a
    low-pass band, of the high-first order a high-pass band of the clip's own bins; padding
    past a shorter clip's bins always ranks last."""
    from types import SimpleNamespace

    from sigwarehouse.freqrex.engine import _band_order

    oracle = SimpleNamespace(width=5, n_clips=2, n_vars=np.array([5, 3]))
    low = _band_order(oracle, "cpu", low_first=True)
    high = _band_order(oracle, "cpu", low_first=False)
    assert low.dtype == high.dtype == torch.int32
    assert low.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert high.tolist() == [[4, 3, 2, 1, 0], [2, 1, 0, 3, 4]]


def test_every_returned_probability_is_the_models_answer_on_that_signal(model):
    """The probabilities an Explanation carries (empty, sufficient, each extra sufficient,
    complete, inverse) are the model's answers on those signals, asked directly."""
    waves, _ = tone_set(1, 4000, seed=7)
    clips = torch.from_numpy(waves)
    out = explain(model, clips, FreqrexParams(seed=1, n_sufficient=2, **LIGHT))

    def asked(wave, mask):
        return model(fft_signal(wave, mask)[None].float())[0].numpy()

    extras = 0
    for wave, e in zip(clips, out, strict=True):
        np.testing.assert_allclose(e.empty_probs, model(torch.zeros(1, 4000))[0], atol=1e-6)
        assert e.sufficient_mask.dtype == bool and e.sufficient_mask.shape == (e.n_vars,)
        np.testing.assert_allclose(e.sufficient_probs, asked(wave, e.sufficient_mask), atol=1e-5)
        assert (e.sufficient_reason is None) == bool(e.sufficient_mask.any())
        for mask, probs in zip(e.extra_sufficient_masks, e.extra_sufficient_probs, strict=True):
            np.testing.assert_allclose(probs, asked(wave, mask), atol=1e-5)
            extras += 1
        if e.complete_mask is not None:
            assert e.complete_reason is None and e.complete_mask.dtype == bool
            np.testing.assert_allclose(e.complete_probs, asked(wave, e.complete_mask), atol=1e-5)
            np.testing.assert_allclose(e.inverse_probs, asked(wave, ~e.complete_mask), atol=1e-5)
    assert extras >= 1


class _AnswersAtVerification(_Counting):
    """The model, honest for `honest` calls; after that every row's answer is rebuilt by
    `answer(honest probabilities) -> probabilities`."""

    def __init__(self, model, honest: int, answer):
        super().__init__(model)
        self.honest, self.answer = honest, answer

    def __call__(self, waves):
        probs = super().__call__(waves)
        return probs if self.calls <= self.honest else self.answer(probs)


def _verification_answers(model, clips, params, answer):
    """(explanations of an honest model, explanations of one answering `answer` from its
    final verification on)."""
    honest = _Counting(model)
    before = explain(honest, clips, params)
    assert not any(e.failed or e.decision_margin > params.decision_margin for e in before)
    verified = sum(e.queries_by_phase["verify"] for e in before)  # in three renderings
    last_honest_call = honest.calls - 3 * math.ceil(verified / 3 / params.batch_size)
    return before, explain(_AnswersAtVerification(model, last_honest_call, answer), clips, params)


def _flattened(top: float):
    """Each row's top class at `top`, the other classes sharing the rest equally."""

    def answer(probs):
        n = probs.shape[1]
        out = torch.full_like(probs, (1 - top) / (n - 1))
        out[torch.arange(len(probs)), probs.argmax(dim=1)] = top
        return out

    return answer


def test_verification_holds_complete_masks_to_delta_sigma_and_sufficient_ones_to_top_1(model):
    """Answered at 0.4 for the same class at verification (others 0.2): still top-1 by a
    clear margin, but below delta * sigma = 0.5 * ~1: every sufficient mask stays, every
    complete mask is dropped."""
    waves, _ = tone_set(1, 4000, seed=7)
    params = FreqrexParams(seed=1, **LIGHT)
    clips = torch.from_numpy(waves[1:])  # not the quiet clip (see the test above)
    before, after = _verification_answers(model, clips, params, _flattened(0.4))
    dropped = 0
    for b, a in zip(before, after, strict=True):
        assert a.sufficient_reason == b.sufficient_reason
        if b.sufficient_reason is None:
            np.testing.assert_array_equal(a.sufficient_mask, b.sufficient_mask)
            assert a.sufficient_probs.max() == pytest.approx(0.4)
        if b.complete_mask is not None:
            assert params.delta * b.confidence + params.decision_margin > 0.4
            assert a.complete_mask is None and a.complete_reason == "verification-failed"
            dropped += 1
    assert dropped >= 2


def test_verification_refuses_a_class_kept_by_less_than_the_margin(model):
    """At verification every answer is a near tie: the class leads by half the decision
    margin. A mask must win by the margin, so every one is dropped, and with a margin of
    0 every sufficient one would have stayed."""
    waves, _ = tone_set(1, 4000, seed=7)
    params = FreqrexParams(seed=1, decision_margin=0.01, **LIGHT)

    def near_tie(probs):
        out = torch.zeros_like(probs)
        rows = torch.arange(len(probs))
        top = probs.argmax(dim=1)
        out[rows, top] = 0.5 + 0.0025
        out[rows, (top + 1) % probs.shape[1]] = 0.5 - 0.0025
        return out

    before, after = _verification_answers(model, torch.from_numpy(waves[1:]), params, near_tie)
    found = [b for b in before if b.sufficient_reason is None]
    assert found
    for b, a in zip(before, after, strict=True):
        if b.sufficient_reason is None:
            assert a.sufficient_mask is None and a.sufficient_reason == "verification-failed"
        if b.complete_mask is not None:
            assert a.complete_mask is None


def test_disjoint_sufficient_masks_and_the_phases_queries_are_counted_under(model):
    """n_sufficient = 3: up to two more sufficient masks per clip, pairwise disjoint with
    the first and each other, each within the clip's own bins (clips of two lengths); the
    queries are reported under every phase's name."""
    waves, _ = tone_set(1, 4000, seed=7)
    clips = [torch.from_numpy(waves[1]), torch.from_numpy(waves[2][:3001])]
    out = explain(model, clips, FreqrexParams(seed=1, n_sufficient=3, **LIGHT))
    for wave, e in zip(clips, out, strict=True):
        masks = [e.sufficient_mask, *e.extra_sufficient_masks]
        assert len(masks) == 3, "both tone clips have three disjoint sufficient masks"
        assert all(m.shape == (wave.shape[0] // 2 + 1,) and m.any() for m in masks)
        assert sum(m.astype(int) for m in masks).max() == 1  # no bin in two masks
        for m in masks:
            p = model(fft_signal(wave, m)[None].float())[0]
            assert int(p.argmax()) == e.label_index
        always = {"original", "empty", "responsibility", "sufficient-grow", "sufficient-minimise",
                  "extra1-grow", "extra1-minimise", "extra2-grow", "extra2-minimise",
                  "verify"}  # fmt: skip
        # the complete search: from the sufficient mask, or from nothing (and fallbacks)
        complete = {"complete-from-sufficient", "complete-grow-from-sufficient",
                    "complete-grow", "complete-grow-magnitude", "complete-grow-lowpass",
                    "complete-grow-highpass", "complete-minimise"}  # fmt: skip
        phases = set(e.queries_by_phase)
        assert always <= phases <= always | complete
        assert phases & complete
        assert e.queries_by_phase["extra2-grow"] > 0


# --- variables of at most variable_hz Hz -----------------------------------------------


def test_a_variable_holds_the_whole_bins_of_its_width_and_the_last_what_is_left():
    """At 16 kHz and 1 Hz, bins lie 1/d Hz apart: under 2 s one bin a variable, 2 s two,
    30 s thirty (floor, not round: 2.99 s still two). A clip whose bins do not fill the
    last variable gives it the rest; expanding a variable mask keeps whole variables,
    and a variable's magnitude is the root of its bins' summed power."""
    from sigwarehouse.freqrex.spectral import FFTSpace, bins_per_variable

    assert [bins_per_variable(n, 16000, 1.0) for n in (100, 31999, 32000, 47840, 480000)] == [
        1, 1, 2, 2, 30,
    ]  # fmt: skip
    assert bins_per_variable(16000, 16000, 0.25) == 1  # never under one bin
    space = FFTSpace(16, bins_per_var=4)  # 9 bins: variables of 4, 4 and 1
    assert (space.n_bins, space.n_vars) == (9, 3)
    mask = torch.tensor([[True, False, True]])
    assert space.expand(mask).tolist() == [[True] * 4 + [False] * 4 + [True]]
    assert space.to_bins(np.array([0.5, 0.0, 2.0])).tolist() == [0.5] * 4 + [0.0] * 4 + [2.0]
    coeffs = torch.arange(9, dtype=torch.float32)[None].to(torch.complex64)
    expected = [math.sqrt(sum(b * b for b in g)) for g in ([0, 1, 2, 3], [4, 5, 6, 7], [8])]
    np.testing.assert_allclose(space.magnitude_order_key(coeffs)[0].numpy(), expected)
    with pytest.raises(ValueError, match="bins_per_var must be >= 1"):
        FFTSpace(16, bins_per_var=0)


def test_the_complete_search_starts_only_from_a_sufficient_mask_certified_whole():
    """The sufficient mask may stand as the complete one only if its last certification
    tested every kept variable and found none removable, it keeps something, and delta
    is at least sufficient_confidence (else "drops sufficiency" would not imply "drops
    the delta test")."""
    from sigwarehouse.freqrex.engine import Found, _certified

    masks = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    found = Found(
        np.arange(4), masks, removable=np.array([0.0, 0.5, 0.0, 0.0]),
        checked=np.array([2, 2, 1, 0]),
    )  # fmt: skip
    assert _certified(found, FreqrexParams()).tolist() == [True, False, False, False]
    above = FreqrexParams(delta=0.5, sufficient_confidence=0.6)
    assert not _certified(found, above).any()
    assert _certified(found, FreqrexParams(delta=0.6, sufficient_confidence=0.6))[0]


# --- verdicts that depend on the rendering ------------------------------------------------


def test_a_verdict_that_the_rendering_changes_sends_the_clip_to_a_wider_margin(model):
    """The quiet clip of this set: a complete mask found at the parameters' margin loses
    its verdict after a 16-bit WAV round trip (faint noise, a few LSB). explain searches
    the clip again with a wider margin (a power-of-two multiple of the parameters'),
    keeps each attempt's queries apart, and what it returns holds by that margin in
    NumPy float64 (the search's rendering) and by the parameters' margin after a 16-bit
    WAV round trip (both rebuilt here, not by the engine)."""
    from reference import pcm16_round_trip

    waves, labels = tone_set(1, 4000, seed=7)
    params = FreqrexParams(seed=1, **LIGHT)
    [ex] = explain(model, torch.from_numpy(waves[:1]), params)
    assert labels[0] == 0 and ex.label_index == 0  # quiet
    steps = ex.decision_margin / params.decision_margin
    assert steps >= 2 and steps == 2 ** round(math.log2(steps))
    assert ex.minimality["decision_margin"] == ex.decision_margin
    earlier = [phase for phase in ex.queries_by_phase if phase.startswith("margin-0.0001-")]
    assert earlier and ex.queries == sum(ex.queries_by_phase.values())
    # the last attempt reuses the earlier ones' answers: it asks only what they had not
    first = sum(ex.queries_by_phase[phase] for phase in earlier)
    last = sum(n for phase, n in ex.queries_by_phase.items() if not phase.startswith("margin-"))
    assert last < first
    assert ex.complete_mask is not None
    c, sigma = ex.label_index, ex.confidence
    for mask, inverse in ((ex.complete_mask, False), (~ex.complete_mask, True)):
        exact = fft_signal(torch.from_numpy(waves[0]), mask.astype(float)).float().numpy()
        for signal, m in ((exact, ex.decision_margin),
                          (pcm16_round_trip(exact), params.decision_margin)):  # fmt: skip
            p = model(torch.from_numpy(signal)[None])[0].numpy()
            lead = p[c] - np.delete(p, c).max()
            if inverse:
                assert -lead >= m
            else:
                assert lead >= m and p[c] >= params.delta * sigma + m


class GridListener(torch.nn.Module):
    """A model that hears only whether a signal lies on the 16-bit grid: "on-grid" (p = 1)
    for a signal with some energy whose every sample is a multiple of 1/32768 to within
    1e-4 of a step, else "off-grid". A clip read from a 16-bit file is on the grid, and
    so is its float64 rebuild; a float32 rebuild is not. Its verdicts are decided by the
    rendering alone, by the whole probability."""

    labels = ["on-grid", "off-grid"]
    sample_rate = 16000
    device = torch.device("cpu")
    dtype = torch.float32
    n_labels = 2

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = waves.double() * 32768
        on = ((x - x.round()).abs().amax(dim=1) < 1e-4) & (waves.abs().amax(dim=1) > 1e-3)
        p = on.double()
        return torch.stack([p, 1 - p], dim=1).float()


def test_a_clip_whose_verdicts_the_rendering_decides_keeps_the_reason_not_an_endless_margin():
    """Every mask's verdict flips between renderings by the whole probability: a wider
    margin would be 2 or more, which no difference of probabilities reaches, so the clip
    is not searched again and its failed masks are dropped as "verification-failed"."""
    rng = np.random.default_rng(3)
    wave = np.round(rng.uniform(-0.5, 0.5, 2000) * 32768) / 32768
    [ex] = explain(GridListener(), torch.from_numpy(wave.astype(np.float32))[None],
                   FreqrexParams(seed=0, **LIGHT))  # fmt: skip
    assert ex.label_index == 0
    assert ex.failed and ex.rendering_spread > 0.5
    assert ex.decision_margin == FreqrexParams().decision_margin  # not searched again
    assert not any(phase.startswith("margin-") for phase in ex.queries_by_phase)
    assert "verification-failed" in (ex.sufficient_reason, ex.complete_reason)


@pytest.mark.parametrize("n_samples", [40589, 40588, 4801])  # a prime, an even, a small odd
def test_the_inverse_transform_on_the_cpu_is_numpys_in_each_precision(n_samples):
    """FFTSpace.inverse (scipy's pocketfft on the CPU) against NumPy's float64 irfft of the
    same coefficients: the length is the clip's, odd ones included, and the precision
    is the coefficients' (float64 for the float64 rebuild, float32 for the search)."""
    from sigwarehouse.freqrex.spectral import FFTSpace

    rng = np.random.default_rng(n_samples)
    waves = rng.standard_normal((3, n_samples))
    space = FFTSpace(n_samples)
    coeffs = space.forward(torch.from_numpy(waves))
    keep = torch.from_numpy(rng.random(coeffs.shape) < 0.3)
    expected = np.fft.irfft(np.fft.rfft(waves) * keep.numpy(), n=n_samples)
    exact = space.inverse(coeffs * keep)
    assert exact.dtype == torch.float64 and exact.shape == (3, n_samples)
    np.testing.assert_allclose(exact.numpy(), expected, atol=1e-12)
    single = space.inverse((coeffs * keep).to(torch.complex64))
    assert single.dtype == torch.float32 and single.shape == (3, n_samples)
    np.testing.assert_allclose(single.numpy(), expected, atol=1e-5)
