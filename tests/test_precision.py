"""Lower precision (`--dtype`), SDPA attention and `--batch-size auto`, on the CPU.

The decisions of a search run in bfloat16 must be the float32 model's: every returned
mask is checked here with a direct float32 model call on the masked signal (plain
torch.fft, tests/reference.py) and the engine's own keep/reject tests. A real zoo model
runs in bfloat16 under CPU autocast, and a tiny real network that answers differently
in 16-bit floats (tests/precision_models.py) drives a bad candidate into the engine's
float32 safety net.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from precision_models import HIGH_BIN, LOW_BIN, HiddenOffset, two_tones
from reference import fft_signal

from sigwarehouse.freqrex import FreqrexParams, explain
from sigwarehouse.freqrex.engine import _explain
from sigwarehouse.freqrex.verdict import keeps, rejects
from sigwarehouse.models import batching, features, precision
from sigwarehouse.models.labels import model_labels
from sigwarehouse.models.loader import load_classifier

# run for every mutant by `make mutation`: the engine's lower-precision path is tested here
pytestmark = pytest.mark.core

REPO = Path(__file__).resolve().parents[1]
ZOO_W2V2 = REPO / "data" / "zoo" / "emotion" / "vc3"  # w2v2-tiny, a Hugging Face directory
ZOO_CNN = REPO / "data" / "zoo" / "emotion" / "vc1.safetensors"  # cnn1d-wave
LIGHT = FreqrexParams(
    seed=2, iterations=1, max_depth=3, grid_size=6, grid_rounds=1, certify_rounds=3,
    per_bin_limit=64,
)  # fmt: skip

needs_zoo = pytest.mark.skipif(not ZOO_W2V2.exists(), reason="the zoo is not built")


def zoo(ckpt: Path):
    """A zoo model: a Hugging Face directory (kind hf) or the CNN's file (kind zoo)."""
    kind = "hf" if ckpt.is_dir() else "zoo"
    return load_classifier(kind, ckpt, model_labels(kind, ckpt))


def eval_clips(n: int) -> list[torch.Tensor]:
    files = sorted((REPO / "data" / "corpus" / "emotion" / "eval").rglob("*.flac"))[::5][:n]
    return [torch.from_numpy(sf.read(f, dtype="float32")[0][:8000].copy()) for f in files]


def float32_probs(model, wave: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """The model's float32 answer on the masked signal, called directly."""
    signal = fft_signal(wave, mask).float()[None]
    with precision.float32_only():
        return model(signal)


def assert_holds_in_float32(model, wave: torch.Tensor, ex, params: FreqrexParams) -> None:
    """Every mask of `ex` meets its definition for the float32 model (verdict.py's tests)."""
    c, sigma = np.array([ex.label_index]), np.array([ex.confidence])
    margin = params.decision_margin
    with precision.float32_only():
        original = model(wave[None])
    assert int(original.argmax()) == ex.label_index
    assert np.allclose(original[0].numpy(), ex.probs, atol=1e-6)  # stored: the float32 answer
    if ex.sufficient_mask is not None:
        p = float32_probs(model, wave, ex.sufficient_mask)
        assert keeps(p, c, sigma, margin, params.sufficient_confidence)[0]
    if ex.complete_mask is not None:
        kept = float32_probs(model, wave, ex.complete_mask)
        assert keeps(kept, c, sigma, margin, params.delta)[0]
        assert rejects(float32_probs(model, wave, ~ex.complete_mask), c, margin)[0]
    assert ex.sufficient_mask is not None or ex.sufficient_reason
    assert ex.complete_mask is not None or ex.complete_reason


@needs_zoo
def test_a_zoo_transformer_really_runs_in_bfloat16_and_float32_only_undoes_it() -> None:
    model = zoo(ZOO_W2V2)
    assert model.attention == "sdpa"
    waves = torch.stack(eval_clips(4))
    exact = model(waves)
    assert model.use_dtype(torch.bfloat16) == torch.bfloat16
    low = model(waves)
    assert low.dtype == torch.float32  # probabilities are float32 whatever the body ran in
    assert not torch.equal(low, exact)  # the body did run in bfloat16
    assert torch.allclose(low, exact, atol=0.05)
    with precision.float32_only():
        assert torch.equal(model(waves), exact)


@needs_zoo
@pytest.mark.parametrize("ckpt", [ZOO_W2V2, ZOO_CNN], ids=["w2v2-tiny", "cnn1d-wave"])
def test_a_bfloat16_search_on_a_zoo_model_returns_masks_that_hold_in_float32(ckpt: Path) -> None:
    model = zoo(ckpt)
    model.use_dtype(torch.bfloat16)
    waves = eval_clips(3)
    results = explain(model, waves, LIGHT)
    for wave, ex in zip(waves, results, strict=True):
        assert ex.searched_in == ("float32" if ex.float32_retry else "bfloat16")
        assert ex.minimality["searched_in"] == ex.searched_in
        assert_holds_in_float32(model, wave, ex, LIGHT)
    assert model.dtype == torch.bfloat16  # the float32 checks did not change the model


def test_the_hidden_offset_network_answers_differently_in_16_bits() -> None:
    """The premise of the safety-net test: the 500 Hz tone alone is "both" in 16-bit
    floats and "other" in float32; the two tones are "both" either way."""
    model, wave = HiddenOffset(), two_tones()
    low_only = np.zeros(wave.shape[0] // 2 + 1, dtype=bool)
    low_only[LOW_BIN] = True
    signal = fft_signal(wave, low_only).float()[None]
    assert int(model(signal).argmax()) == 1 and int(model(wave[None]).argmax()) == 0
    for dtype in (torch.bfloat16, torch.float16):
        model.use_dtype(dtype)
        assert int(model(signal).argmax()) == 0 and int(model(wave[None]).argmax()) == 0
        with precision.float32_only():
            assert int(model(signal).argmax()) == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_a_mask_that_fails_in_float32_sends_the_clip_to_a_float32_search(dtype) -> None:
    model, wave = HiddenOffset(), two_tones()
    model.use_dtype(dtype)
    # The 16-bit search alone: its masks (500 Hz only) fail the float32 verification.
    (first,) = _explain(model, [wave], LIGHT, None, precision.name_of(dtype), LIGHT.decision_margin)
    assert first.float32_retry
    assert first.sufficient_reason == first.complete_reason == "verification-failed"
    # explain searches that clip again in float32 and returns masks that hold there.
    (ex,) = explain(model, [wave], LIGHT)
    assert ex.float32_retry and ex.searched_in == "float32"
    assert ex.queries_by_phase[f"{precision.name_of(dtype)}-search"] == first.queries
    assert ex.queries == first.queries + sum(
        v for k, v in ex.queries_by_phase.items() if not k.endswith("-search")
    )
    assert list(np.flatnonzero(ex.sufficient_mask)) == [LOW_BIN, HIGH_BIN]
    assert list(np.flatnonzero(ex.complete_mask)) == [LOW_BIN, HIGH_BIN]
    assert_holds_in_float32(model, wave, ex, LIGHT)
    # the same masks as a float32 search from the start
    model.use_dtype(torch.float32)
    (exact,) = explain(model, [wave], LIGHT)
    assert not exact.float32_retry and exact.searched_in == "float32"
    assert np.array_equal(exact.sufficient_mask, ex.sufficient_mask)
    assert np.array_equal(exact.complete_mask, ex.complete_mask)


def test_features_stay_float32_inside_autocast() -> None:
    waves = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    plain = [
        features.whisper_log_mel(waves, n_samples=None),
        features.ast_fbank(waves, max_length=None),
        features.wav2vec2_normalize(waves),
    ]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        cast = [
            features.whisper_log_mel(waves, n_samples=None),
            features.ast_fbank(waves, max_length=None),
            features.wav2vec2_normalize(waves),
        ]
    for a, b in zip(plain, cast, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)


def test_dtype_defaults_and_refusals() -> None:
    assert precision.default_dtype("cuda") == "bfloat16"
    assert precision.default_dtype("cpu") == "float32"
    assert precision.resolve(None, "cuda:0") == "bfloat16"
    assert precision.resolve("float16", "cpu") == "float16"
    with pytest.raises(ValueError, match="dtype 'float64' is not one of float32, bfloat16"):
        precision.resolve("float64", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        FreqrexParams(dtype="int8")
    # a runtime field: stored with the parameters, not part of their hash
    assert FreqrexParams(dtype="bfloat16").hash() == FreqrexParams().hash()
    assert FreqrexParams(dtype="bfloat16").to_dict()["dtype"] == "bfloat16"


def test_a_python_model_stays_float32() -> None:
    from sigwarehouse.freqrex.toy import LABELS

    model = load_classifier("python", "pymodels:Tones", list(LABELS))
    assert model.use_dtype(torch.bfloat16) == torch.float32 and model.dtype == torch.float32


def test_auto_batch_size_keeps_the_default_on_a_cpu() -> None:
    size, how = batching.auto_batch_size(HiddenOffset(), 8000, default=64)
    assert size == 64 and "auto sizing needs a CUDA device" in how


def test_hf_checkpoints_load_with_sdpa_attention(tmp_path: Path) -> None:
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=8, num_labels=2, id2label={0: "low", 1: "high"},
        label2id={"low": 0, "high": 1}, attn_implementation="eager",
    )  # fmt: skip
    Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "wav2vec2"
    model = load_classifier("hf", tmp_path, ["low", "high"])
    assert model.attention == "sdpa"  # asked for, although the checkpoint was made eager
    waves = torch.randn(3, 8000, generator=torch.Generator().manual_seed(1))
    exact = model(waves)
    model.use_dtype(torch.bfloat16)
    assert torch.allclose(model(waves), exact, atol=0.05)
    with precision.float32_only():
        assert torch.equal(model(waves), exact)


@needs_zoo
def test_sigwh_ingest_in_bfloat16_with_auto_batches_records_its_choices(tmp_path: Path) -> None:
    """`sigwh ingest --dtype bfloat16 --batch-size auto` on the spoof zoo models (CPU):
    the run stores its precision and batch choice outside the parameter hash, each
    model's precision and attention kernel, and masks that hold for the float32 model."""
    from dataclasses import replace

    from light_params import ARGS
    from sharing import sigwh
    from test_ingest import DATASET, TASK, _build, _models

    from sigwarehouse import store
    from sigwarehouse.audio import load_clip
    from sigwarehouse.freqrex.spectral import unpack_mask

    path = _build(tmp_path / "warehouse.duckdb", n_models=2)  # one to explain, one other
    model, *others = _models(path)
    args = ["ingest", "--model", model, "--dataset", DATASET, "--per-label", "1"]
    more = ["--dtype", "bfloat16", "--batch-size", "auto", "--device", "cpu", *ARGS]
    result = sigwh(path, *args, *more)
    assert result.exit_code == 0, result.output
    assert "2 clip(s) explained by" in result.output
    assert "(search in bfloat16, batches of 64, " in result.output
    with store.opened(path, read_only=True) as con:
        params_json, params_hash = con.execute(
            "SELECT params, params_hash FROM runs WHERE job = 'ingest'"
        ).fetchone()
        stored = con.execute(
            "SELECT clip_id, n_bins, orig_class, orig_conf, sufficient_mask, complete_mask,"
            " minimality FROM explanations WHERE model = ?",
            [model],
        ).fetchall()
        labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
        waves = {c: load_clip(con, c) for c, *_ in stored}
    params = json.loads(params_json)
    runtime = params.pop("runtime")
    assert params["dtype"] == "bfloat16" and params["batch_size"] == 64
    assert runtime["dtype_asked"] == "bfloat16"
    assert "auto sizing needs a CUDA device" in runtime["batch_size"]
    assert runtime["models"][model]["dtype"] == "bfloat16"
    assert all(runtime["models"][m]["dtype"] == "float32" for m in others)  # signals only
    exact = FreqrexParams.from_dict(params)
    assert params_hash == exact.hash() == replace(exact, dtype="float32", batch_size=7).hash()
    ckpt = REPO / "data" / "zoo" / TASK / model
    ckpt = ckpt if ckpt.is_dir() else ckpt.with_suffix(".safetensors")
    clf = load_classifier("hf" if ckpt.is_dir() else "zoo", ckpt, labels)
    assert len(stored) == 2
    for clip_id, n_bins, cls, conf, suf, comp, minimality in stored:
        figures = json.loads(minimality)
        assert figures["searched_in"] == ("float32" if figures["float32_retry"] else "bfloat16")
        wave = torch.from_numpy(np.ascontiguousarray(waves[clip_id]))
        c, sigma = np.array([cls]), np.array([conf])
        margin = exact.decision_margin
        if suf is not None:
            p = float32_probs(clf, wave, unpack_mask(suf, n_bins))
            assert keeps(p, c, sigma, margin)[0]
        if comp is not None:
            mask = unpack_mask(comp, n_bins)
            assert keeps(float32_probs(clf, wave, mask), c, sigma, margin, exact.delta)[0]
            assert rejects(float32_probs(clf, wave, ~mask), c, margin)[0]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--dtype", "float64"], "--dtype 'float64': expected float32, bfloat16 or float16"),
        (["--batch-size", "0"], "--batch-size '0': expected a whole number >= 1, or auto"),
        (["--batch-size", "big"], "--batch-size 'big': expected a whole number >= 1, or auto"),
    ],
)
def test_ingest_refuses_a_bad_dtype_or_batch_size_saying_what_it_takes(
    cli, option: list[str], message: str
) -> None:
    result = cli("ingest", "--model", "sp1", *option, expect=1)
    assert message in " ".join(result.output.split())


def test_float32_only_turns_tensorfloat32_off_and_restores_it() -> None:
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    with precision.float32_only():
        assert precision.in_float32_only()
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        with precision.float32_only():
            assert precision.in_float32_only()
        assert not torch.backends.cudnn.allow_tf32  # the inner block restored the outer's
    assert not precision.in_float32_only()
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_the_auto_batch_is_the_largest_power_of_two_that_fits() -> None:
    mib = 2**20
    assert batching.largest_fitting_batch(10 * mib, 1000 * mib, headroom=0.7) == 64  # 70 fit
    assert batching.largest_fitting_batch(10 * mib, 10_000 * mib, headroom=1.0) == 512
    assert batching.largest_fitting_batch(1 * mib, 10**6 * mib) == batching.MAX_BATCH
    assert batching.largest_fitting_batch(10 * mib, 5 * mib) == 1  # nothing fits: one


def test_an_hf_architecture_without_sdpa_falls_back_to_its_own_attention(tmp_path: Path) -> None:
    """WavLM has no SDPA kernel in transformers: asking for it must not stop the model
    from loading, and the run records the kernel it got."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForSequenceClassification

    from sigwarehouse.models.attention import build_with_sdpa

    config = WavLMConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=8, num_buckets=16, max_bucket_distance=32, num_labels=2,
        id2label={0: "low", 1: "high"}, label2id={"low": 0, "high": 1},
    )  # fmt: skip
    assert not WavLMForSequenceClassification._supports_sdpa
    built = build_with_sdpa(WavLMForSequenceClassification, config)
    assert built.config._attn_implementation == "eager"
    built.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    model = load_classifier("hf", tmp_path, ["low", "high"])
    assert model.attention == "eager"
    probs = model(torch.randn(2, 8000, generator=torch.Generator().manual_seed(2)))
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(dim=1), torch.ones(2))
