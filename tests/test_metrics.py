"""The figures stored or reported beside probabilities and transcripts, each checked
against an independent computation: entropy in bits (scipy), batched model answers
(one direct call per clip), the Levenshtein ratio (a plain dynamic programme) and the
ASR-fidelity tables (plain Python over the rows inserted).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import uuid
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import soundfile as sf
import torch
from scipy.stats import entropy as scipy_entropy

from sigwarehouse.analyses import asr_fidelity, spectral_entropy
from sigwarehouse.analyses.spectral_entropy import spectral_entropy_bits
from sigwarehouse.freqrex.spectral import pack_mask, unpack_mask
from sigwarehouse.freqrex.toy import tone_set, train_tone_classifier
from sigwarehouse.models.scoring import entropy_bits, evaluate

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`


# --- entropy_bits -----------------------------------------------------------------------


def test_entropy_bits_is_shannon_entropy_in_bits():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(5, 0.7), size=200)
    np.testing.assert_allclose(entropy_bits(probs), scipy_entropy(probs, base=2, axis=1))
    for n in (2, 3, 4, 5, 8):
        assert entropy_bits(np.full((1, n), 1 / n))[0] == pytest.approx(math.log2(n), abs=1e-12)
    exact = entropy_bits(np.array([[0.5, 0.25, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    assert exact.tolist() == [1.5, 0.0]  # dyadic: exact; a zero adds nothing (no nan)


def test_entropy_bits_takes_float32_rows_and_clips_rounding_outside_0_1():
    p32 = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    assert entropy_bits(p32)[0] == pytest.approx(scipy_entropy(p32[0].astype(np.float64), base=2))
    # a rounding below 0 or above 1 counts as 0 or 1, never as a nan
    assert entropy_bits(np.array([[1.0 + 1e-7, -1e-7]]))[0] == 0.0
    assert entropy_bits(np.zeros((0, 3))).shape == (0,)


# --- evaluate ---------------------------------------------------------------------------


class _Counting:
    def __init__(self, model):
        self.model, self.batches = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, waves):
        self.batches.append(tuple(waves.shape))
        return self.model(waves)


@pytest.fixture(scope="module")
def tone_model():
    torch.manual_seed(0)
    return train_tone_classifier(n_samples=4000, seed=0)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 100])
def test_evaluate_answers_each_wave_as_a_direct_call_in_the_order_given(tone_model, batch_size):
    waves, _ = tone_set(1, 4000, seed=3)
    clips = [torch.from_numpy(w) for w in waves]
    clips = [clips[0], clips[1][:2999], clips[2], clips[3][:2999], clips[1]]  # two lengths
    counting = _Counting(tone_model)
    got = evaluate(counting, clips, batch_size)
    want = np.stack([tone_model(c[None])[0].numpy() for c in clips])
    assert got.dtype == np.float32 and got.shape == (5, 4)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # equal lengths share batches of at most batch_size: 3 of length 4000, 2 of 2999
    want_batches = math.ceil(3 / batch_size) + math.ceil(2 / batch_size)
    assert len(counting.batches) == want_batches
    assert all(b[0] <= batch_size for b in counting.batches)
    assert sum(b[0] for b in counting.batches) == 5
    assert evaluate(counting, [], batch_size).shape == (0, 4)


# --- the Levenshtein ratio --------------------------------------------------------------


def _indel_ratio(a: str, b: str) -> float:
    """1 - (insertions + deletions turning a into b) / (|a| + |b|), by the LCS table."""
    if not a and not b:
        return 1.0
    lcs = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if x == y else max(lcs[i][j + 1], lcs[i + 1][j])
    return 1 - (len(a) + len(b) - 2 * lcs[-1][-1]) / (len(a) + len(b))


def test_normalise_lowers_drops_punctuation_but_apostrophes_and_collapses_space():
    assert asr_fidelity.normalise("  Don't STOP,  me-now!\n") == "don't stop me now"
    assert asr_fidelity.normalise("...") == ""


@pytest.mark.parametrize(
    ("a", "b"),
    [("kitten", "sitting"), ("", ""), ("", "abc"), ("abc", ""), ("the cat", "the cat"),
     ("Hello, world", "hello world"), ("a b c", "c b a"), ("it's", "its")],
)  # fmt: skip
def test_lev_ratio_is_the_normalised_indel_similarity(a, b):
    want = _indel_ratio(asr_fidelity.normalise(a), asr_fidelity.normalise(b))
    assert asr_fidelity.lev_ratio(a, b) == pytest.approx(want, abs=1e-12)
    assert asr_fidelity.lev_ratio(a, b) == asr_fidelity.lev_ratio(b, a)


def test_lev_ratio_of_kitten_and_sitting():
    assert asr_fidelity.lev_ratio("kitten", "sitting") == pytest.approx(8 / 13)


# --- the ASR-fidelity tables from a warehouse -------------------------------------------


@pytest.fixture()
def with_transcripts(small_filled, tmp_path: Path):
    """A copy of the small warehouse with transcripts of three explanations of task u
    (the last one without STOI rows), and the texts inserted."""
    source, filled = small_filled
    path = tmp_path / "asr.duckdb"
    shutil.copy(source, path)
    con = duckdb.connect(str(path))
    run = str(uuid.uuid4())
    explained = con.execute(
        "SELECT e.model, e.clip_id, e.params_hash, e.orig_class FROM explanations e "
        "JOIN models m USING (model) WHERE m.task = 'u' ORDER BY e.model, e.clip_id LIMIT 3"
    ).fetchall()
    texts = {
        "original": "the quick brown fox",
        "sufficient": "the quick brown box",
        "complete": "",
        "inverse": "a quick fox",
    }
    stoi = {"sufficient": 0.5, "complete": 0.25, "inverse": 0.125}
    inserted = []
    for n, (model, clip, params_hash, orig_class) in enumerate(explained):
        con.execute(
            "INSERT OR IGNORE INTO transcripts VALUES ('asr1', ?, '', ?, 'original', ?, 1.0, ?)",
            [clip, params_hash, texts["original"], run],
        )
        for kind in ("sufficient", "complete", "inverse"):
            text = texts[kind] + ("" if n == 0 else f" {n}")
            con.execute(
                "INSERT INTO transcripts VALUES ('asr1', ?, ?, ?, ?, ?, 1.0, ?)",
                [clip, model, params_hash, kind, text, run],
            )
            has_stoi = n < 2
            if has_stoi:
                con.execute(
                    "INSERT INTO signal_stoi VALUES (?, ?, ?, ?, ?, ?)",
                    [model, clip, params_hash, kind, stoi[kind] * (n + 1), run],
                )
            label = filled.labels["u"][orig_class]
            inserted.append((model, clip, kind, label, text, stoi[kind] * (n + 1) if has_stoi
                             else None))  # fmt: skip
    con.close()
    return path, inserted, texts["original"]


def test_signal_scores_join_each_transcript_to_its_original_and_stoi(with_transcripts):
    path, inserted, original = with_transcripts
    con = duckdb.connect(str(path), read_only=True)
    scores = asr_fidelity.signal_scores(con)
    con.close()
    assert scores.height == len(inserted) == 9
    got = {(r["model"], r["clip_id"], r["kind"]): r for r in scores.iter_rows(named=True)}
    for model, clip, kind, label, text, stoi in inserted:
        row = got[model, clip, kind]
        assert (row["class"], row["text"], row["original"], row["stoi"]) == (
            label, text, original, stoi
        )  # fmt: skip
        assert row["asr"] == "asr1" and row["task"] == "u"
        want = _indel_ratio(asr_fidelity.normalise(original), asr_fidelity.normalise(text))
        assert row["lev_ratio_indel"] == pytest.approx(want, abs=1e-12)


def test_summary_and_table5_are_means_per_model_kind_and_class(with_transcripts):
    path, inserted, original = with_transcripts
    con = duckdb.connect(str(path), read_only=True)
    means = asr_fidelity.summary(asr_fidelity.signal_scores(con))
    con.close()
    groups: dict[tuple, list] = {}
    for model, _clip, kind, label, text, stoi in inserted:
        groups.setdefault((model, kind, label), []).append((text, stoi))
    assert means.height == len(groups)
    for row in means.iter_rows(named=True):
        rows = groups[row["model"], row["kind"], row["class"]]
        ratios = [_indel_ratio(asr_fidelity.normalise(original), asr_fidelity.normalise(t))
                  for t, _ in rows]  # fmt: skip
        assert row["n"] == len(rows)
        assert row["lev_ratio_indel"] == pytest.approx(sum(ratios) / len(ratios))
        stois = [s for _, s in rows if s is not None]
        assert row["stoi"] == (pytest.approx(sum(stois) / len(stois)) if stois else None)
        assert row["empty_transcripts"] == sum(t == "" for t, _ in rows)
    labels = ["real", "fake"]
    wide = asr_fidelity.table5(means.reverse(), labels)  # any row order: sorted by model
    order = [f"{k} {c}" for k in asr_fidelity.KINDS for c in labels]
    assert wide.columns[0] == "model"
    assert wide.columns[1:] == [c for c in order if c in wide.columns]
    assert wide["model"].to_list() == sorted({m for m, *_ in inserted})
    for row in means.iter_rows(named=True):
        value = row["stoi"] if row["kind"] == "inverse" else row["lev_ratio_indel"]
        cell = wide.filter(wide["model"] == row["model"])[f"{row['kind']} {row['class']}"][0]
        assert cell == (pytest.approx(value) if value is not None else None)


def test_table5_has_a_row_per_model_in_model_order_whatever_the_input_order():
    """Hand-made means of three models, given in no particular order: the table's rows
    come sorted by model, each cell the mean of its model, kind and class."""
    rows = [  # model, kind, class, lev_ratio_indel, stoi
        ("m2", "sufficient", "real", 0.5, None), ("m3", "inverse", "real", 0.0, 0.25),
        ("m1", "complete", "fake", 0.75, None), ("m3", "sufficient", "real", 0.125, None),
        ("m1", "inverse", "real", 0.0, 0.5), ("m2", "complete", "fake", 1.0, None),
    ]  # fmt: skip
    means = pl.DataFrame(rows, schema=["model", "kind", "class", "lev_ratio_indel", "stoi"],
                         orient="row")  # fmt: skip
    wide = asr_fidelity.table5(means, ["real", "fake"])
    assert wide["model"].to_list() == ["m1", "m2", "m3"]
    assert wide.columns == ["model", "sufficient real", "complete fake", "inverse real"]
    assert wide.row(0) == ("m1", None, 0.75, 0.5)
    assert wide.row(1) == ("m2", 0.5, 1.0, None)
    assert wide.row(2) == ("m3", 0.125, None, 0.25)


# --- spectral entropy -------------------------------------------------------------------


def test_spectral_entropy_is_the_entropy_of_the_normalised_power():
    rng = np.random.default_rng(1)
    power = rng.exponential(size=(20, 257)) * (rng.random((20, 257)) > 0.3)
    for row in power:
        want = scipy_entropy(row / row.sum(), base=2)
        assert spectral_entropy_bits(row) == pytest.approx(want, rel=1e-12)
        assert spectral_entropy_bits(7.0 * row) == pytest.approx(want, rel=1e-12)  # scale-free
    for k in (1, 2, 4, 1024):
        assert spectral_entropy_bits(np.r_[np.ones(k), np.zeros(5)]) == math.log2(k)
    single = spectral_entropy_bits(np.array([0.0, 3.0, 0.0]))
    assert single == 0.0 and math.copysign(1.0, single) == 1.0  # 0.0, not -0.0
    assert math.isnan(spectral_entropy_bits(np.zeros(8)))


def _u_statistic(a: list[float], b: list[float]) -> float:
    """Mann-Whitney U of `a`: pairs where a wins, ties counting one half."""
    return sum((x > y) + 0.5 * (x == y) for x in a for y in b)


def _exact_two_sided_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of U by enumerating every split of the pooled values (no ties)."""
    from itertools import combinations

    pooled, n1 = a + b, len(a)
    u = _u_statistic(a, b)
    centre = n1 * len(b) / 2
    us = []
    for pick in combinations(range(len(pooled)), n1):
        first = [pooled[i] for i in pick]
        second = [pooled[i] for i in range(len(pooled)) if i not in pick]
        us.append(_u_statistic(first, second))
    return min(1.0, sum(abs(x - centre) >= abs(u - centre) for x in us) / len(us))


@pytest.mark.parametrize(
    ("a", "b"),
    [([9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
     ([1.0, 4.0, 6.0, 8.5, 10.0, 12.0, 13.5, 16.0],
      [2.0, 3.0, 5.0, 7.0, 9.0, 11.0, 12.5, 14.0, 15.0]),
     ([0.5, 20.0, 21.0, 22.0, 1.5, 2.5, 3.5, 4.5], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])],
)  # fmt: skip
def test_mann_whitney_gives_u_exact_p_and_rank_biserial_r(a, b):
    row = spectral_entropy.mann_whitney(a, b)
    u = _u_statistic(a, b)
    assert (row["n1"], row["n2"]) == (len(a), len(b))
    assert (row["median1"], row["median2"]) == (float(np.median(a)), float(np.median(b)))
    assert row["U"] == u
    assert row["p"] == pytest.approx(_exact_two_sided_p(a, b))
    assert row["r_rank_biserial"] == pytest.approx(2 * u / (len(a) * len(b)) - 1)
    assert row["reject"] == (row["p"] < 0.05)


def test_mann_whitney_rejects_below_the_level_only():
    high, low = [float(x) for x in range(9, 17)], [float(x) for x in range(1, 9)]
    separated = spectral_entropy.mann_whitney(high, low)
    # the one split of 16 values into 8 and 8 as extreme, on either side: 2 / C(16, 8)
    assert separated["p"] == pytest.approx(2 / math.comb(16, 8)) and separated["reject"] is True
    assert separated["r_rank_biserial"] == 1.0 and separated["verdict"] == "differ (p < 0.05)"
    close = spectral_entropy.mann_whitney(high[::2] + low[::2], high[1::2] + low[1::2])
    assert close["reject"] is False and close["verdict"].startswith("no difference shown")


def test_mann_whitney_of_an_empty_group_gives_counts_only():
    row = spectral_entropy.mann_whitney([1.0, 2.0], [])
    verdict = "not tested: n = 0 clips in the smaller class (needs ≥ 8)"
    assert row == {"n1": 2, "n2": 0, "median1": 1.5, "median2": None, "U": None, "p": None,
                   "r_rank_biserial": None, "reject": None, "verdict": verdict}  # fmt: skip


def test_mann_whitney_below_its_minimum_says_so_instead_of_a_p_value():
    # 7 clips per class, perfectly separated: an exact test would give p = 2 / C(14, 7)
    # = 0.0006, but 7 clips are below the stated minimum, so no p, U or r is given
    row = spectral_entropy.mann_whitney([float(x) for x in range(8, 15)], [1.0, 2, 3, 4, 5, 6, 7])
    assert (row["U"], row["p"], row["r_rank_biserial"], row["reject"]) == (None,) * 4
    assert row["verdict"] == "not tested: n = 7 clips in the smaller class (needs ≥ 8)"
    assert (row["n1"], row["n2"], row["median1"], row["median2"]) == (7, 7, 11.0, 4.0)


def test_signal_entropies_of_stored_masks_match_numpy(small_filled):
    path, filled = small_filled
    con = duckdb.connect(str(path), read_only=True)
    frame = spectral_entropy.signal_entropies(con)
    blobs = dict(con.execute("SELECT clip_id, audio FROM clips").fetchall())
    con.close()
    want = []
    for (model, clip), (suff, comp) in filled.masks.items():
        task, label_index = filled.clips[clip][0], None
        if len(filled.labels[task]) != 2:
            continue  # the figure is for two-class tasks
        samples, _ = sf.read(io.BytesIO(blobs[clip]), dtype="float64")
        power = np.abs(np.fft.rfft(samples)) ** 2
        (label_index,) = [o[3] for o in filled.originals if o[:2] == (model, clip)]
        label = filled.labels[task][label_index]
        want.append((model, clip, "original", label, scipy_entropy(power, base=2)))
        for kind, mask in (("sufficient", suff), ("complete", comp)):
            if mask is None:
                continue
            kept = power * mask
            bits = scipy_entropy(kept, base=2) if kept.sum() > 0 else math.nan
            want.append((model, clip, kind, label, bits))
    got = {(r["model"], r["clip_id"], r["kind"]): r for r in frame.iter_rows(named=True)}
    assert len(got) == len(want) == frame.height
    silent = 0
    for model, clip, kind, label, bits in want:
        row = got[model, clip, kind]
        assert row["class"] == label and row["task"] == "u"
        if math.isnan(bits):
            silent += 1
            assert math.isnan(row["bits"])
        else:
            assert row["bits"] == pytest.approx(bits, rel=1e-9)
    assert silent > 0  # the deaf model's empty sufficient masks are silent signals


def test_signal_entropies_without_a_stored_parameter_set_read_masks_as_fft(small_filled, tmp_path):
    """A file whose freqrex_params row is missing (written by another program): its
    masks are read as FFT masks, the default space, and give the same entropies."""
    from sharing import copy_of

    con = duckdb.connect(str(small_filled[0]), read_only=True)
    want = spectral_entropy.signal_entropies(con).sort("model", "clip_id", "kind")
    con.close()
    path = copy_of(small_filled[0], tmp_path)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM freqrex_params")
    got = spectral_entropy.signal_entropies(con).sort("model", "clip_id", "kind")
    con.close()
    assert got.height == want.height > 0
    assert got.equals(want, null_equal=True)


def test_a_complete_mask_without_a_sufficient_one_still_has_its_entropy(small_filled, tmp_path):
    """Verification may drop a sufficient mask and keep the complete one: the complete
    signal's row is still there, with the entropy of the power it keeps."""
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path)
    con = duckdb.connect(str(path))
    model, clip, n, blob = con.execute(
        "SELECT model, clip_id, n_bins, complete_mask FROM explanations e JOIN models m"
        " USING (model) WHERE m.task = 'u' AND complete_mask IS NOT NULL"
        " AND sufficient_mask IS NOT NULL ORDER BY ALL LIMIT 1"
    ).fetchone()
    con.execute(
        "UPDATE explanations SET sufficient_mask = NULL WHERE model = ? AND clip_id = ?",
        [model, clip],
    )
    frame = spectral_entropy.signal_entropies(con)
    samples, _ = sf.read(
        io.BytesIO(con.execute("SELECT audio FROM clips WHERE clip_id = ?", [clip]).fetchone()[0]),
        dtype="float64",
    )
    con.close()
    rows = frame.filter((pl.col("model") == model) & (pl.col("clip_id") == clip))
    assert sorted(rows["kind"].to_list()) == ["complete", "original"]
    kept = np.abs(np.fft.rfft(samples)) ** 2 * unpack_mask(blob, n)
    (bits,) = rows.filter(pl.col("kind") == "complete")["bits"].to_list()
    assert bits == pytest.approx(scipy_entropy(kept, base=2), rel=1e-9)


def test_tests_compare_the_two_classes_of_each_model_and_kind():
    frame = pl.DataFrame({
        "task": ["u"] * 7, "dataset": ["e"] * 7, "params_hash": ["h"] * 7,
        "model": ["s1"] * 5 + ["s2"] * 2,
        "kind": ["sufficient"] * 7,
        "class": ["real", "real", "fake", "fake", "fake", "real", "fake"],
        "bits": [5.0, 6.0, 1.0, 2.0, math.nan, 3.0, 4.0],
    })  # fmt: skip
    out = spectral_entropy.tests(frame, {"u": ["real", "fake"]})
    rows = {r["model"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {"s1", "s2"}
    s1 = rows["s1"]
    assert (s1["class1"], s1["class2"], s1["n1"], s1["n2"]) == ("real", "fake", 2, 2)
    # the NaN row is left out; two clips a class are too few to test
    assert s1["U"] is None and s1["verdict"].startswith("not tested: n = 2 clips")
    assert (rows["s2"]["n1"], rows["s2"]["U"]) == (1, None)
    tested = pl.DataFrame({
        "task": ["u"] * 16, "dataset": ["e"] * 16, "params_hash": ["h"] * 16,
        "model": ["s1"] * 16, "kind": ["sufficient"] * 16,
        "class": ["real"] * 8 + ["fake"] * 8, "bits": [float(x) for x in range(16, 0, -1)],
    })  # fmt: skip
    (row,) = spectral_entropy.tests(tested, {"u": ["real", "fake"]}).iter_rows(named=True)
    assert (row["n1"], row["n2"], row["U"], row["r_rank_biserial"]) == (8, 8, 64.0, 1.0)


def test_mann_whitney_of_an_empty_first_group_gives_counts_only():
    row = spectral_entropy.mann_whitney([], [3.0])
    assert (row["n1"], row["median1"], row["median2"], row["U"]) == (0, None, 3.0, None)


def test_signal_entropies_of_stft_masks_and_of_clips_that_cannot_load(small_filled, tmp_path):
    """An STFT-space parameter set: each signal is rebuilt with torch.stft/istft and its
    entropy taken from its own spectrum. A clip whose audio cannot be loaded is left out,
    the others are still there."""
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path)
    filled = small_filled[1]
    con = duckdb.connect(str(path))
    stft = {"space": "stft", "stft_n_fft": 256, "stft_hop": 100, "seed": 0, "delta": 0.5}
    n_freq, n_frames = 129, 1 + 8000 // 100
    con.execute("INSERT INTO freqrex_params VALUES ('5757575757575757', ?)", [json.dumps(stft)])
    clips = sorted(c for c, (task, _) in filled.clips.items() if task == "u")
    rng = np.random.default_rng(8)
    masks = {}
    for clip in clips[:2]:
        masks[clip] = rng.random(n_freq * n_frames) < 0.3
        con.execute(
            "INSERT INTO explanations SELECT * REPLACE ('5757575757575757' AS params_hash,"
            " ? AS n_bins, ? AS sufficient_mask, NULL AS complete_mask)"
            " FROM explanations WHERE model = 's1' AND clip_id = ?",
            [n_freq * n_frames, pack_mask(masks[clip]), clip],
        )
    gone = clips[len(clips) // 2]  # a clip in the middle: those after it must still count
    con.execute("UPDATE clips SET audio = NULL WHERE clip_id = ?", [gone])  # root: /nowhere
    frame = spectral_entropy.signal_entropies(con)
    blobs = dict(con.execute("SELECT clip_id, audio FROM clips").fetchall())
    con.close()
    assert gone not in frame["clip_id"].to_list()
    assert set(frame["clip_id"].to_list()) == set(clips) - {gone}
    window = torch.hann_window(256, dtype=torch.float64)
    for clip, mask in masks.items():
        (row,) = frame.filter(
            (pl.col("params_hash") == "5757575757575757") & (pl.col("clip_id") == clip)
            & (pl.col("kind") == "sufficient")
        ).iter_rows(named=True)  # fmt: skip
        x, _ = sf.read(io.BytesIO(blobs[clip]), dtype="float32")
        spec = torch.stft(torch.from_numpy(x).double(), 256, 100, window=window,
                          return_complex=True)  # fmt: skip
        signal = torch.istft(spec * torch.from_numpy(mask).reshape(spec.shape), 256, 100,
                             window=window, length=len(x)).float().double().numpy()  # fmt: skip
        power = np.abs(np.fft.rfft(signal)) ** 2
        assert row["bits"] == pytest.approx(scipy_entropy(power, base=2), rel=1e-4)
