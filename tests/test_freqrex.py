"""freqrex on a small real model (trained in the session on synthetic tones).

The property tests re-run every returned mask through the model with plain
torch.fft / torch.stft and a model call, independently of the search code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from reference import fft_signal

from sigwarehouse.freqrex import (
    FreqrexParams,
    bands_to_mask,
    explain,
    mask_to_bands,
    pack_mask,
    signals_for,
    unpack_mask,
)
from sigwarehouse.freqrex.toy import LABELS, tone_set, train_tone_classifier

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

N_SAMPLES = 4000  # 0.25 s at 16 kHz: 2001 rfft bins, keeps the suite fast


@pytest.fixture(scope="session")
def tone_model():
    torch.manual_seed(0)
    return train_tone_classifier(n_samples=N_SAMPLES, seed=0)


@pytest.fixture(scope="session")
def tone_waves():
    waves, labels = tone_set(2, N_SAMPLES, seed=7)
    return torch.from_numpy(waves), labels


@pytest.fixture(scope="session")
def explained(tone_model, tone_waves):
    waves, _ = tone_waves
    params = FreqrexParams(seed=3, n_sufficient=2)
    return params, explain(tone_model, waves, params)


def _probs(model, signal: torch.Tensor) -> np.ndarray:
    return model(signal[None].float())[0].numpy()


def _holds(model, wave, mask, c, sigma, params, complete, to_signal=fft_signal) -> bool:
    """Does the mask satisfy sufficiency (or delta-completeness), by the engine's margin?"""
    margin = params.decision_margin
    p = _probs(model, to_signal(wave, mask))
    ok = p[c] - np.delete(p, c).max() >= margin
    if params.sufficient_confidence > 0:
        ok &= p[c] >= params.sufficient_confidence * sigma + margin
    if complete:
        inv = _probs(model, to_signal(wave, ~mask))
        ok &= p[c] >= params.delta * sigma + margin
        ok &= np.delete(inv, c).max() - inv[c] >= margin
    return bool(ok)


def by(params: FreqrexParams, exp) -> FreqrexParams:
    """The parameters with the margin the explanation's masks hold by (wider than the
    parameters' where its verdicts depended on the rendering: Explanation.decision_margin)."""
    return dataclasses.replace(params, decision_margin=exp.decision_margin)


def removable_alone(model, wave, mask, c, sigma, params, complete, to_signal=fft_signal):
    """Share of the mask's kept variables whose single removal keeps the property,
    measured with plain FFTs and direct model calls (one variable at a time)."""
    kept = np.flatnonzero(mask)
    hits = 0
    for v in kept:
        smaller = mask.copy()
        smaller[v] = False
        hits += _holds(model, wave, smaller, c, sigma, params, complete, to_signal)
    return hits / len(kept) if len(kept) else 0.0


def check_definitions(model, waves, explanations, params, to_signal=fft_signal) -> int:
    """Assert every returned mask meets its definition, and that its stored per-bin
    minimality figure is what an independent check measures (masks checked whole, not
    on a sample); returns how many masks were checked."""
    checked = 0
    for exp, wave in zip(explanations, waves, strict=True):
        c, sigma = exp.label_index, exp.confidence
        original = _probs(model, wave)
        assert int(original.argmax()) == c
        assert original[c] == pytest.approx(sigma, abs=1e-5)
        if exp.sufficient_mask is not None:
            p = _probs(model, to_signal(wave, exp.sufficient_mask))
            assert int(p.argmax()) == c, "sufficient mask does not keep the class"
            assert p[c] >= params.sufficient_confidence * sigma
            np.testing.assert_allclose(p, exp.sufficient_probs, atol=1e-4)
            n_kept = int(exp.sufficient_mask.sum())
            # the figure is over every kept bin, or a sample of 64 above the limit
            assert exp.sufficient_checked == n_kept or (
                n_kept > params.per_bin_limit and exp.sufficient_checked == 64
            )
            if n_kept and exp.sufficient_checked == n_kept:
                share = removable_alone(
                    model, wave, exp.sufficient_mask, c, sigma, by(params, exp), False, to_signal
                )
                # one bin of slack: a removal right on the margin may round either way
                assert abs(share - exp.sufficient_removable) <= 1 / n_kept
            checked += 1
        else:
            assert exp.sufficient_reason
        for mask in exp.extra_sufficient_masks:
            assert not (mask & exp.sufficient_mask).any(), "extra masks must be disjoint"
            assert int(_probs(model, to_signal(wave, mask)).argmax()) == c
            checked += 1
        if exp.complete_mask is not None:
            p = _probs(model, to_signal(wave, exp.complete_mask))
            inv = _probs(model, to_signal(wave, ~exp.complete_mask))
            assert int(p.argmax()) == c, "complete mask does not keep the class"
            assert p[c] >= params.delta * sigma, "complete mask below delta * sigma"
            assert int(inv.argmax()) != c, "inverse of the complete mask keeps the class"
            assert exp.inverse_label_index == int(inv.argmax())
            np.testing.assert_allclose(inv, exp.inverse_probs, atol=1e-4)
            n_kept = int(exp.complete_mask.sum())
            assert exp.complete_checked == n_kept or (
                n_kept > params.per_bin_limit and exp.complete_checked == 64
            )
            if exp.complete_checked == n_kept:
                share = removable_alone(
                    model, wave, exp.complete_mask, c, sigma, by(params, exp), True, to_signal
                )
                assert abs(share - exp.complete_removable) <= 1 / n_kept
            checked += 1
        else:
            assert exp.complete_reason
    return checked


def test_every_returned_mask_meets_its_definition(tone_model, tone_waves, explained):
    waves, _ = tone_waves
    params, explanations = explained
    assert check_definitions(tone_model, waves, explanations, params) >= 10


def test_tone_explanations_are_small_minimal_and_point_at_the_tone(
    tone_model, tone_waves, explained
):
    waves, labels = tone_waves
    params, explanations = explained
    for exp, label, wave in zip(explanations, labels, waves, strict=True):
        assert exp.label_index == label  # the model is right on these clips
        if LABELS[label] == "quiet":
            continue
        assert exp.sufficient_reason is None
        assert 0 < exp.sufficient_mask.sum() < 0.05 * exp.n_vars
        # 1-minimal per bin, re-measured with plain FFTs and a direct model call
        assert removable_alone(tone_model, wave, exp.sufficient_mask, exp.label_index,
                               exp.confidence, by(params, exp), complete=False) == 0.0  # fmt: skip
        hz = np.flatnonzero(exp.sufficient_mask) * 16000 / N_SAMPLES
        if LABELS[label] == "low":  # below the high tones' band (a minimal set need not
            assert (hz < 1000).all()  # be the tone itself: one clip's is a 64 Hz bin)
        if LABELS[label] == "high":
            assert ((hz > 1900) & (hz < 3600)).any()
        assert exp.responsibility.dtype == np.float32
        assert exp.responsibility.shape == (exp.n_vars,)
        assert exp.responsibility.max() > 0
        assert exp.queries == sum(exp.queries_by_phase.values())


def test_complete_masks_are_one_minimal_per_bin(tone_model, tone_waves, explained):
    """Every complete mask, silence-class clips' hundreds of bins included, is 1-minimal:
    no kept bin can be dropped alone (plain FFTs, a direct model call per bin)."""
    waves, _ = tone_waves
    params, explanations = explained
    sizes = []
    for exp, wave in zip(explanations, waves, strict=True):
        if exp.complete_mask is None:
            continue
        sizes.append(int(exp.complete_mask.sum()))
        assert removable_alone(tone_model, wave, exp.complete_mask, exp.label_index,
                               exp.confidence, by(params, exp), complete=True) == 0.0  # fmt: skip
    assert len(sizes) >= 6 and max(sizes) > 100  # large masks were among them


def test_a_sampled_minimality_figure_estimates_the_whole_mask(tone_model, tone_waves):
    """Above per_bin_limit a mask is not minimised bin by bin and its figure is measured
    on 64 of its bins: a share in steps of 1/64, within sampling error of the share over
    every kept bin."""
    waves, _ = tone_waves
    params = FreqrexParams(seed=3, per_bin_limit=64)
    sampled = 0
    for exp, wave in zip(explain(tone_model, waves, params), waves, strict=True):
        if exp.complete_mask is None or exp.complete_mask.sum() <= 64:
            continue
        sampled += 1
        assert exp.complete_checked == 64
        assert exp.complete_removable * 64 == pytest.approx(round(exp.complete_removable * 64))
        whole = removable_alone(tone_model, wave, exp.complete_mask, exp.label_index,
                                exp.confidence, by(params, exp), complete=True)  # fmt: skip
        assert abs(whole - exp.complete_removable) <= 0.2  # ~4 standard errors at 64 bins
    assert sampled >= 1


def test_empty_signal_clips_are_searched_for_a_complete_mask(tone_model, tone_waves, explained):
    waves, _ = tone_waves
    params, explanations = explained
    quiet = [i for i, e in enumerate(explanations) if LABELS[e.label_index] == "quiet"]
    assert quiet, "the tone set has quiet clips"
    silence = _probs(tone_model, torch.zeros(N_SAMPLES))
    assert LABELS[int(silence.argmax())] == "quiet"  # the model calls silence quiet
    for i in quiet:
        exp = explanations[i]
        assert exp.sufficient_reason == "empty-signal-keeps-class"
        assert exp.sufficient_mask is not None and not exp.sufficient_mask.any()
        assert exp.queries_by_phase.get("responsibility", 0) == 0  # nothing needs to be kept
        grown = [n for phase, n in exp.queries_by_phase.items() if phase.endswith("complete-grow")]
        assert sum(grown) > 0  # but Def. 3 is searched (in some attempt: a retry reuses answers)
        assert exp.complete_mask is not None or exp.complete_reason == "no-complete-mask-found"
    found = [i for i in quiet if explanations[i].complete_mask is not None]
    assert found, "a quiet clip has a complete mask (a band whose removal changes the class)"
    check_definitions(tone_model, waves[found], [explanations[i] for i in found], params)


class _Recording:
    """The model, counting each distinct waveform it is asked about (exact bytes; the
    inverse FFT of one mask gives the same samples whatever batch it is in)."""

    def __init__(self, model):
        self.model, self.seen = model, {}

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, waves):
        for row in waves.numpy():
            if not row.any():
                continue  # the empty signal is the same for every clip of a length
            key = row.tobytes()
            self.seen[key] = self.seen.get(key, 0) + 1
        return self.model(waves)


def test_no_clip_and_mask_is_queried_twice_outside_verification(tone_model, tone_waves):
    waves, _ = tone_waves
    recording = _Recording(tone_model)
    out = explain(recording, waves, FreqrexParams(seed=5, iterations=2))
    repeats = sum(n - 1 for n in recording.seen.values())
    # the final verification re-asks each returned mask (and the inverse) on purpose, in
    # each of three renderings (one of them the search's own)
    verified = 3 * sum(
        (e.sufficient_mask is not None and e.sufficient_reason is None)
        + 2 * (e.complete_mask is not None)
        for e in out
    )
    assert sum(recording.seen.values()) > 500
    assert repeats <= verified


def test_explanations_do_not_depend_on_the_batch(tone_model):
    """Masks, maps and every stored figure (queries, minimality, the sampled one of masks
    over per_bin_limit included) are the same whichever clips share a batch."""
    waves, _ = tone_set(4, N_SAMPLES, seed=21)  # 16 clips
    clips = torch.from_numpy(waves)
    params = FreqrexParams(seed=2, iterations=2, per_bin_limit=64)
    together = explain(tone_model, clips, params)
    alone = [explain(tone_model, clips[i : i + 1], params)[0] for i in range(len(clips))]
    in_fives = [
        e for k in range(0, len(clips), 5) for e in explain(tone_model, clips[k : k + 5], params)
    ]
    for a, b, c in zip(together, alone, in_fives, strict=True):
        for x in (b, c):
            assert a.responsibility.tobytes() == x.responsibility.tobytes()
            for field in ("sufficient_mask", "complete_mask"):
                ma, mx = getattr(a, field), getattr(x, field)
                assert (ma is None and mx is None) or ma.tobytes() == mx.tobytes()
            spent = [{k: v for k, v in e.queries_by_phase.items() if v} for e in (a, x)]
            assert a.queries == x.queries and spent[0] == spent[1]
            assert a.minimality == x.minimality
    assert any(e.complete_checked == 64 for e in together), "no mask took the sampled figure"


def test_deterministic_for_a_seed(tone_model, tone_waves):
    waves, _ = tone_waves
    sub = waves[1:4]
    a = explain(tone_model, sub, FreqrexParams(seed=11, iterations=2))
    b = explain(tone_model, sub, FreqrexParams(seed=11, iterations=2))
    c = explain(tone_model, sub, FreqrexParams(seed=12, iterations=2))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.responsibility, y.responsibility)
        np.testing.assert_array_equal(x.sufficient_mask, y.sufficient_mask)
        np.testing.assert_array_equal(x.complete_mask, y.complete_mask)
        assert x.queries == y.queries
        assert x.params == y.params == FreqrexParams(seed=11, iterations=2).to_dict()
    assert any(
        not np.array_equal(x.responsibility, z.responsibility) for x, z in zip(a, c, strict=True)
    )


def test_list_input_of_mixed_lengths_keeps_order(tone_model, tone_waves):
    waves, _ = tone_waves
    clips = [waves[1], waves[2][:3000], waves[5]]
    params = FreqrexParams(iterations=2)
    out = explain(tone_model, clips, params)
    assert [e.clip_index for e in out] == [0, 1, 2]
    assert [e.n_samples for e in out] == [4000, 3000, 4000]
    check_definitions(tone_model, clips, out, params)


def test_stft_space_masks_meet_their_definitions(tone_model, tone_waves):
    waves, _ = tone_waves
    params = FreqrexParams(space="stft", stft_n_fft=256, stft_hop=64, iterations=2)
    out = explain(tone_model, waves[1:3], params)
    window = torch.hann_window(256, dtype=torch.float64)

    def stft_signal(wave, mask):
        spec = torch.stft(wave.double(), 256, 64, window=window, return_complex=True)
        m = torch.from_numpy(mask).reshape(spec.shape)
        return torch.istft(spec * m, 256, 64, window=window, length=wave.shape[0])

    assert check_definitions(tone_model, waves[1:3], out, params, stft_signal) >= 2
    assert out[0].space == "stft" and out[0].n_vars == 129 * (1 + N_SAMPLES // 64)


def test_signals_for_matches_plain_irfft(tone_waves):
    waves, _ = tone_waves
    rng = np.random.default_rng(0)
    masks = rng.random((3, N_SAMPLES // 2 + 1)) < 0.3
    got = signals_for(waves[:3], masks)
    want = torch.stack([fft_signal(w, m) for w, m in zip(waves[:3], masks, strict=True)])
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        signals_for(waves[:3], masks[:2])


def test_pack_unpack_and_bands_round_trip():
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 2001, 24001):
        mask = rng.random(n) < rng.random()
        data = pack_mask(mask)
        assert len(data) == (n + 7) // 8
        np.testing.assert_array_equal(unpack_mask(data, n), mask)
        bands = mask_to_bands(mask)
        assert all(a < b for a, b in bands)
        np.testing.assert_array_equal(bands_to_mask(bands, n), mask)
    assert mask_to_bands(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 3), (4, 5)]
    with pytest.raises(ValueError):
        unpack_mask(b"\x00", 9)
    with pytest.raises(ValueError):
        bands_to_mask([(3, 12)], 10)


def test_params_are_stored_hashed_and_validated():
    p = FreqrexParams()
    assert FreqrexParams.from_dict(p.to_dict()) == p
    assert p.hash() == FreqrexParams().hash() and len(p.hash()) == 16
    assert FreqrexParams(batch_size=7).hash() == p.hash()  # runtime only
    assert FreqrexParams(seed=1).hash() != p.hash()
    # the engine version is in the hash: rows of an earlier engine stay apart
    assert p.to_dict()["algorithm"] == 8
    for old in (1, 2, 3, 4, 5, 6, 7):
        assert FreqrexParams(algorithm=old).hash() != p.hash()
        with pytest.raises(ValueError, match=f"engine version {old}"):
            explain(None, torch.zeros(1, 100), FreqrexParams(algorithm=old))
    for bad in ({"delta": 0.0}, {"delta": 1.5}, {"iterations": 0}, {"space": "mel"}):
        with pytest.raises(ValueError):
            FreqrexParams(**bad)
    with pytest.raises(ValueError):
        FreqrexParams.from_dict({"seed": 0, "nope": 1})


def test_no_complete_mask_is_recorded_not_faked(tone_model):
    # a loud tone saturates the model (sigma within the decision margin of 1), so with
    # delta = 1 no mask can reach delta * sigma + margin: the search must say so
    rng = np.random.default_rng(3)
    t = np.arange(N_SAMPLES) / 16000
    wave = torch.from_numpy((3.0 * np.sin(2 * np.pi * 400 * t)).astype(np.float32))
    wave += torch.from_numpy(rng.normal(0, 0.01, N_SAMPLES).astype(np.float32))
    sigma = float(_probs(tone_model, wave).max())
    params = FreqrexParams(delta=1.0, iterations=2)
    assert sigma + params.decision_margin > 1.0, "precondition: the model saturates"
    (exp,) = explain(tone_model, wave[None], params)
    assert exp.complete_mask is None and exp.complete_probs is None
    assert exp.complete_reason == "no-complete-mask-found"
    assert exp.sufficient_mask is not None and exp.sufficient_reason is None
    check_definitions(tone_model, wave[None], [exp], params)


def test_oracle_packs_request_sets_into_shared_batches(tone_model, tone_waves):
    from sigwarehouse.freqrex.oracle import Intervals, MaskRequests, Oracle
    from sigwarehouse.freqrex.spectral import make_space

    waves, _ = tone_waves
    clips = [waves[0], waves[1][:3000], waves[2]]  # two lengths
    oracle = Oracle(tone_model, clips, make_space, batch_size=4)
    a = MaskRequests(np.array([0, 1, 2, 0, 2]), keep=Intervals.from_lists([[(0, 300)]] * 5))
    b = MaskRequests(
        np.array([1, 2, 2]), keep=Intervals.from_lists([[(10, 900), (1000, 1200)]] * 3)
    )
    pa, pb = oracle.run_many([(a, "a"), (b, "b")])
    # a asks clips 0 and 2 twice for the same mask, b clip 2 twice: those are answered
    # once. Length 4000: 0, 2 from a and 2 from b -> 3 mutants (1 batch); length 3000:
    # 1 from a and 1 from b (1 batch)
    assert oracle.batches == 2 and oracle.rounds == 1
    assert oracle.queries.tolist() == [1, 2, 2] and oracle.reused == 3
    assert oracle.by_phase["a"].tolist() == [1, 1, 1]
    again = oracle.run(a, "again")  # all known: nothing reaches the model
    assert oracle.batches == 2 and oracle.reused == 8
    torch.testing.assert_close(again, pa)
    fresh = oracle.run(a, "verify", fresh=True)  # deliberate re-verification does
    assert oracle.by_phase["verify"].tolist() == [2, 1, 2]
    torch.testing.assert_close(fresh, pa, atol=1e-5, rtol=0)
    for req, probs in ((a, pa), (b, pb)):
        for r, clip in enumerate(req.clip):
            n_vars = clips[clip].shape[0] // 2 + 1
            mask = np.zeros(n_vars, dtype=bool)
            for start, end in zip(req.keep.starts[req.keep.row_ptr[r] : req.keep.row_ptr[r + 1]],
                                  req.keep.ends[req.keep.row_ptr[r] : req.keep.row_ptr[r + 1]],
                                  strict=True):  # fmt: skip
                mask[start:end] = True
            want = _probs(tone_model, fft_signal(clips[clip], mask))
            np.testing.assert_allclose(probs[r].numpy(), want, atol=1e-5)


def test_slack_orders_by_the_same_tests_that_decide():
    """verdict.slack is >= 0 exactly where keeps / rejects say yes (away from float ties),
    and larger the further a row is inside; the prefix lengths tried around the
    predicted one are distinct, descending, >= 2, and include all of them."""
    from sigwarehouse.freqrex.search import _prefix_lengths
    from sigwarehouse.freqrex.verdict import keeps, rejects, slack

    rng = np.random.default_rng(0)
    probs = torch.from_numpy(rng.dirichlet(np.ones(4), size=500).astype(np.float32))
    target = rng.integers(0, 4, size=500)
    sigma = rng.uniform(0.3, 1.0, size=500)
    for ratio in (0.0, 0.5):
        room = slack(probs, target, sigma, 1e-4, ratio)
        away = np.abs(room) > 1e-6
        decided = keeps(probs, target, sigma, 1e-4, ratio)
        np.testing.assert_array_equal((room >= 0)[away], decided[away])
    room = slack(probs, target, sigma, 1e-4, reject=True)
    away = np.abs(room) > 1e-6
    np.testing.assert_array_equal((room >= 0)[away], rejects(probs, target, 1e-4)[away])

    cost = np.full(40, 0.01)  # each removal costs 0.01 of a slack of 0.1: ten fit
    lengths = _prefix_lengths(cost, 0.1)
    assert lengths == sorted(set(lengths), reverse=True) and min(lengths) >= 2
    assert 40 in lengths and 10 in lengths
    assert _prefix_lengths(np.full(5, 1.0), 0.1) == [5, 4, 2]  # nothing predicted to fit
