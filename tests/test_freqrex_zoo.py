"""freqrex on the shipped zoo models and evaluation clips: every returned mask is re-run
through the model with plain torch.fft and checked against its definition.

One short clip per model (cut to 0.5 s) and a light parameter set keep the suite
fast; the clip is the first evaluation clip, from a model-dependent offset, whose class
differs from the class the model gives silence (so the full search runs).
Skipped where the zoo has not been built (data/zoo/<task>/: Hugging Face directories and
the CNN's .safetensors files).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sigwarehouse.freqrex import FreqrexParams, explain

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path(os.environ.get("SIGWH_TEST_ZOO", ROOT / "data" / "zoo"))
CORPUS = ROOT / "data" / "corpus"


def _checkpoints() -> list[Path]:
    """Every zoo model: a save_pretrained directory (kind hf) or a CNN file (kind zoo)."""
    found = []
    for path in sorted(ZOO.glob("*/*")):
        if (path / "config.json").is_file() or path.suffix == ".safetensors":
            found.append(path)
    return sorted(found, key=lambda p: (p.parent.name, len(p.stem), p.stem))


def _kind(ckpt: Path) -> str:
    return "hf" if ckpt.is_dir() else "zoo"


CHECKPOINTS = _checkpoints()


def _eval_clips(model, task: str, offset: int) -> list[torch.Tensor]:
    import soundfile as sf

    files = sorted((CORPUS / task / "eval").rglob("*.flac"))
    if not files:
        pytest.skip(f"no evaluation clips for {task}")
    lengths = [8000]
    clips, fallback = [], []
    for k in range(len(files)):
        wave, sr = sf.read(files[(offset * 7 + k * 5) % len(files)], dtype="float32")
        assert sr == 16000
        wave = torch.from_numpy(wave[: lengths[len(clips)]].copy())
        silent = model(torch.zeros(1, wave.shape[0]))[0].argmax()
        fallback.append(wave)
        if model(wave[None])[0].argmax() != silent:
            clips.append(wave)
        if len(clips) == len(lengths) or k == 8:
            break
    return clips or fallback[:1]


# Light, but every stage runs (masks over 64 bins take the sampled-figure path): each
# host round trip costs a small-batch forward pass here.
LIGHT = dict(
    iterations=1, max_depth=3, grid_size=6, grid_rounds=1, certify_rounds=3, per_bin_limit=64
)


@pytest.mark.skipif(not CHECKPOINTS, reason=f"no zoo models under {ZOO}")
@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_zoo_masks_meet_their_definitions(ckpt: Path):
    from sigwarehouse.models.labels import model_labels
    from sigwarehouse.models.loader import load_classifier

    labels = model_labels(_kind(ckpt), ckpt)
    model = load_classifier(_kind(ckpt), ckpt, labels)
    waves = _eval_clips(model, ckpt.parent.name, CHECKPOINTS.index(ckpt))
    params = FreqrexParams(seed=1, minimise_rounds=1, **LIGHT)
    for wave, exp in zip(waves, explain(model, waves, params), strict=True):
        _check(model, wave, exp, params)


def _check(model, wave: torch.Tensor, exp, params: FreqrexParams) -> None:
    spectrum = torch.fft.rfft(wave.double())
    n = wave.shape[0]

    def probs(mask: np.ndarray) -> np.ndarray:
        signal = torch.fft.irfft(spectrum * torch.from_numpy(mask), n=n).float()
        return model(signal[None])[0].numpy()

    c, sigma = exp.label_index, exp.confidence
    assert int(model(wave[None])[0].argmax()) == c
    assert exp.n_vars == n // 2 + 1 and exp.responsibility.shape == (exp.n_vars,)
    assert exp.queries == sum(exp.queries_by_phase.values()) > 0
    if exp.sufficient_mask is None:
        assert exp.sufficient_reason
    else:
        assert int(probs(exp.sufficient_mask).argmax()) == c
        if exp.sufficient_reason == "empty-signal-keeps-class":
            assert not exp.sufficient_mask.any()
        else:
            assert exp.sufficient_mask.any()
            assert 0.0 <= exp.sufficient_removable <= 1.0
    if exp.complete_mask is None:
        assert exp.complete_reason
    else:
        kept, inverse = probs(exp.complete_mask), probs(~exp.complete_mask)
        assert int(kept.argmax()) == c
        assert kept[c] >= params.delta * sigma
        assert int(inverse.argmax()) != c


def _two_models() -> list[Path]:
    """One model of each of two tasks: the first task's CNN file and the second task's
    first Hugging Face directory, so both loading paths are covered."""
    tasks = sorted({ckpt.parent.name for ckpt in CHECKPOINTS})[:2]
    cnn = [c for c in CHECKPOINTS if c.parent.name == tasks[0] and not c.is_dir()][:1]
    hf = [c for c in CHECKPOINTS if len(tasks) > 1 and c.parent.name == tasks[1] and c.is_dir()]
    return cnn + hf[:1]


@pytest.mark.skipif(len(_two_models()) < 2, reason=f"needs zoo models of two tasks under {ZOO}")
@pytest.mark.parametrize("ckpt", _two_models(), ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_zoo_explanations_do_not_depend_on_the_batch(ckpt: Path):
    """8 clips explained all at once, in chunks of 5 and 3, and one at a time give
    byte-identical masks and responsibility maps (an explanation is a function of the clip
    alone)."""
    import soundfile as sf

    from sigwarehouse.models.labels import model_labels
    from sigwarehouse.models.loader import load_classifier

    model = load_classifier(_kind(ckpt), ckpt, model_labels(_kind(ckpt), ckpt))
    files = sorted((CORPUS / ckpt.parent.name / "eval").rglob("*.flac"))[::4][:8]
    # 0.4 s and 0.5 s cuts: two lengths, so length groups are mixed in one call too
    waves = [
        torch.from_numpy(sf.read(f, dtype="float32")[0][: 6400 if k % 3 else 8000].copy())
        for k, f in enumerate(files)
    ]
    assert len(waves) == 8
    params = FreqrexParams(seed=4, **LIGHT)
    together = explain(model, waves, params)
    in_chunks = explain(model, waves[:5], params) + explain(model, waves[5:], params)
    alone = [explain(model, [w], params)[0] for w in waves]
    for a, b, c in zip(together, in_chunks, alone, strict=True):
        for x in (b, c):
            assert a.responsibility.tobytes() == x.responsibility.tobytes()
            for field in ("sufficient_mask", "complete_mask"):
                ma, mx = getattr(a, field), getattr(x, field)
                assert (ma is None and mx is None) or ma.tobytes() == mx.tobytes()
