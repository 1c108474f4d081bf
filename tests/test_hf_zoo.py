"""The shipped zoo's transformer models are plain Hugging Face checkpoints.

Every `kind = "hf"` zoo model is loaded through the real catalog (`ingest/`) exactly as a
user's checkpoint would be, and checked against its own files and against transformers'
own numpy feature extractors; its eval accuracy is recomputed from the shipped eval
clips. Nothing is downloaded: every file is in data/zoo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from threads import torch_threads

from sigwarehouse import catalog
from sigwarehouse.models import hfzoo
from sigwarehouse.models import train as tr
from sigwarehouse.models.hf import feature_fn
from sigwarehouse.models.loader import load_classifier

ROOT = Path(__file__).resolve().parents[1]
CATALOG = catalog.load(ROOT / "ingest")
ZOO_DIR = (ROOT / "data" / "zoo").resolve()
HF_ZOO = sorted(
    (m for m in CATALOG.models.values() if m.kind == "hf" and Path(m.ref).is_relative_to(ZOO_DIR)),
    key=lambda m: (m.task, m.id),
)
IDS = [m.id for m in HF_ZOO]
CLASSES = {
    "hubert-tiny": ("HubertForSequenceClassification", "Wav2Vec2FeatureExtractor"),
    "w2v2-tiny": ("Wav2Vec2ForSequenceClassification", "Wav2Vec2FeatureExtractor"),
    "whisper-enc": ("WhisperForAudioClassification", "WhisperFeatureExtractor"),
    "ast-tiny": ("ASTForAudioClassification", "ASTFeatureExtractor"),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a small shared machine more threads only contend."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def eval_splits() -> dict:
    return {
        task: tr.load_split(ROOT / "data/corpus" / task / "eval", CATALOG.tasks[task].labels, 16000)
        for task in {m.task for m in HF_ZOO}
    }


def test_every_task_has_the_four_transformer_families():
    by_task: dict[str, set[str]] = {}
    for m in HF_ZOO:
        by_task.setdefault(m.task, set()).add(m.backbone)
    assert by_task == {task: set(CLASSES) for task in ("emotion", "genre", "spoof")}


@pytest.mark.parametrize("entry", HF_ZOO, ids=IDS)
def test_directory_is_a_save_pretrained_checkpoint(entry):
    path = Path(entry.ref)
    config = json.loads((path / "config.json").read_text())
    labels = CATALOG.tasks[entry.task].labels
    model_class, extractor_class = CLASSES[entry.backbone]
    assert config["architectures"] == [model_class]
    assert [config["id2label"][str(i)] for i in range(len(labels))] == labels
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}
    preprocessor = json.loads((path / "preprocessor_config.json").read_text())
    assert preprocessor["feature_extractor_type"] == extractor_class
    assert preprocessor["sampling_rate"] == 16000
    meta = hfzoo.read_meta(path)
    assert meta["id"] == entry.id and meta["family"] == entry.backbone
    assert meta["accuracy"] == entry.accuracy and meta["params"] == entry.params
    assert {"seed", "epochs", "lr", "clips"} <= set(meta["train"]) and meta["train_seconds"] > 0


@pytest.mark.parametrize("entry", HF_ZOO, ids=IDS)
def test_catalog_model_reproduces_its_accuracy(entry, eval_splits):
    """Loaded as ingestion loads it; the recorded figure is recomputed on the eval clips."""
    labels = CATALOG.tasks[entry.task].labels
    clf = load_classifier(entry.kind, entry.ref, labels)
    assert type(clf.model).__name__ == CLASSES[entry.backbone][0]
    assert hfzoo.count_params(clf.model) == entry.params
    waves, ys = eval_splits[entry.task]
    probs = clf(torch.from_numpy(waves[0]).unsqueeze(0))
    torch.testing.assert_close(probs.sum(-1), torch.ones(1), atol=1e-5, rtol=0)
    assert entry.accuracy >= 0.85, "the issue asks for at least 0.85 on the eval split"
    # one clip of slack for BLAS differences between machines
    assert tr.accuracy(clf, waves, ys) == pytest.approx(entry.accuracy, abs=1.01 / len(ys))


def _reference_inputs(extractor, clip: np.ndarray) -> np.ndarray:
    """The transformers extractor's own numpy features of one clip."""
    out = extractor(clip, sampling_rate=16000, return_tensors="np")
    key = "input_features" if "input_features" in out else "input_values"
    return out[key][0]


@pytest.mark.parametrize("entry", HF_ZOO, ids=IDS)
def test_torch_features_and_probabilities_match_transformers(entry, eval_splits):
    """Our batched torch feature path equals the saved extractor's numpy output, and the
    adapter's probabilities equal the plain transformers pipeline's, on a real clip."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    extractor = AutoFeatureExtractor.from_pretrained(entry.ref, local_files_only=True)
    clip = eval_splits[entry.task][0][3]
    ours = next(iter(feature_fn(extractor)(torch.from_numpy(clip)[None]).values()))[0]
    # tolerances of tests/test_features.py: AST's fbank differs by ~1e-4 relative
    np.testing.assert_allclose(ours.numpy(), _reference_inputs(extractor, clip), atol=3e-4)

    model = AutoModelForAudioClassification.from_pretrained(entry.ref, local_files_only=True)
    inputs = extractor(clip, sampling_rate=16000, return_tensors="pt")
    inputs.pop("attention_mask", None)
    with torch.no_grad():
        want = model.eval()(**inputs).logits.softmax(-1)
    got = load_classifier("hf", entry.ref, CATALOG.tasks[entry.task].labels)(
        torch.from_numpy(clip)[None]
    )
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


def test_zoo_weights_stay_small():
    total = sum(hfzoo.weight_bytes(m.ref) for m in HF_ZOO)
    assert total <= 12 * 10**6
