"""Model adapters: the committed zoo and Hugging Face checkpoints behind one interface.

Zoo tests load the committed checkpoints exactly as ingestion does (through the
catalog TOML and `load_classifier`: kind "hf" for the transformer families, "zoo" for
the 1-D CNN) and score the committed eval split; tests/test_hf_zoo.py checks the
Hugging Face directories themselves. Hugging Face
tests save tiny randomly initialised models with `save_pretrained` into tmp dirs and
compare the adapter (torch features) with the Hugging Face numpy pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from threads import torch_threads

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import hfzoo, zoo
from sigwarehouse.models import train as tr
from sigwarehouse.models.labels import LabelMappingError, model_labels, resolve_label_map
from sigwarehouse.models.loader import load_classifier

ROOT = Path(__file__).resolve().parents[1]
INGEST = ROOT / "ingest"
TASKS = tomllib.loads((INGEST / "tasks.toml").read_text())
SR = 16000


def _zoo_entries() -> list[dict]:
    """The catalog entries whose files are the shipped zoo under data/zoo."""
    zoo_dir = (ROOT / "data" / "zoo").resolve()
    entries = []
    for task in TASKS:
        path = INGEST / "models" / f"{task}.toml"
        if path.is_file():
            for m in tomllib.loads(path.read_text()).get("model", []):
                ref = (path.parent / m["ref"]).resolve()
                if m["kind"] in ("zoo", "hf") and ref.is_relative_to(zoo_dir):
                    entries.append({**m, "ref": str(ref)})
    return entries


def _weight_bytes(entry: dict) -> int:
    return (
        hfzoo.weight_bytes(entry["ref"])
        if entry["kind"] == "hf"
        else Path(entry["ref"]).stat().st_size
    )


ZOO = _zoo_entries()
# the tasks the zoo is trained for (the speech task's models are pretrained detectors)
ZOO_TASKS = {task: TASKS[task] for task in dict.fromkeys(m["task"] for m in ZOO)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a small shared machine more threads only contend."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def eval_splits() -> dict:
    return {
        task: tr.load_split(ROOT / "data/corpus" / task / "eval", info["labels"], SR)
        for task, info in ZOO_TASKS.items()
    }


# --- the committed zoo ------------------------------------------------------------------


def test_every_task_has_five_zoo_families_within_budget():
    # speech, gender and speech-music have pretrained models from other projects only
    assert set(ZOO_TASKS) == set(TASKS) - {"speech", "gender", "speech-music"}
    for task in ZOO_TASKS:
        entries = [m for m in ZOO if m["task"] == task]
        assert len({m["backbone"] for m in entries}) == 5, task
        assert sum(m["kind"] == "hf" for m in entries) >= 4, task
    assert sum(_weight_bytes(m) for m in ZOO) <= 12 * 10**6


@pytest.mark.parametrize("entry", ZOO, ids=[m["id"] for m in ZOO])
def test_zoo_model_reproduces_recorded_accuracy(entry, eval_splits):
    labels = TASKS[entry["task"]]["labels"]
    clf = load_classifier(entry["kind"], entry["ref"], labels)
    waves, ys = eval_splits[entry["task"]]
    assert clf.labels == labels and clf.sample_rate == SR
    assert tr.read_meta(entry["ref"])["params"] == entry["params"] == hfzoo.count_params(clf.model)
    acc = tr.accuracy(clf, waves, ys)
    # one clip of slack for BLAS differences between machines
    assert acc == pytest.approx(entry["accuracy"], abs=1.01 / len(ys))


@pytest.mark.parametrize("entry", ZOO, ids=[m["id"] for m in ZOO])
def test_zoo_batched_equals_unbatched_and_sums_to_one(entry, eval_splits):
    labels = TASKS[entry["task"]]["labels"]
    clf = load_classifier(entry["kind"], entry["ref"], labels)
    waves = eval_splits[entry["task"]][0][::9][:4]
    n = min(len(w) for w in waves)
    x = torch.from_numpy(np.stack([w[:n] for w in waves]))
    batched = clf(x)
    alone = torch.cat([clf(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.sum(-1), torch.ones(len(x)), atol=1e-5, rtol=0)


def test_zoo_probabilities_follow_task_order(eval_splits):
    """The same model under a permuted task label list permutes its columns accordingly."""
    labels = TASKS["emotion"]["labels"]
    x = torch.from_numpy(eval_splits["emotion"][0][0]).unsqueeze(0)
    permuted = labels[::-1]
    for kind in ("zoo", "hf"):
        entry = next(m for m in ZOO if m["task"] == "emotion" and m["kind"] == kind)
        base = load_classifier(kind, entry["ref"], labels)(x)
        other = load_classifier(kind, entry["ref"], permuted)(x)
        torch.testing.assert_close(other, base[:, [labels.index(t) for t in permuted]])


@pytest.mark.parametrize("kind", ["zoo", "hf"])
def test_zoo_labels_are_read_without_torch(kind):
    entry = next(m for m in ZOO if m["kind"] == kind)
    code = (
        "import sys; from sigwarehouse.models.labels import model_labels; "
        f"print(model_labels({kind!r}, {entry['ref']!r})); assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(TASKS[entry["task"]]["labels"])


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SigwhError, match="not found"):
        load_classifier("zoo", tmp_path / "nope.safetensors", ["a", "b"])
    with pytest.raises(SigwhError, match="unknown model kind"):
        load_classifier("onnx", "x", ["a"])


# --- training is seeded; the catalog block keeps hand-written entries ------------------


@pytest.mark.parametrize("model_id", ["sp1", "sp2"])  # the CNN file, a HuBERT directory
def test_training_is_deterministic_and_round_trips(tmp_path, eval_splits, model_id):
    labels = TASKS["spoof"]["labels"]
    waves, ys = eval_splits["spoof"]
    data = ([w[:SR] for w in waves[::5]], ys[::5])
    weights = []
    for run in ("a", "b"):
        res = tr.train_one("spoof", model_id, labels, SR, data, data, tmp_path / run, epochs=1)
        assert res.path == tr.checkpoint_path(tmp_path / run, "spoof", model_id)
        file = res.path / "model.safetensors" if res.path.is_dir() else res.path
        weights.append(load_file(file))
        meta = tr.read_meta(res.path)
        assert meta["accuracy"] == res.meta["accuracy"]
        assert meta["train"]["seed"] == 0 and meta["train"]["epochs"] == 1
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:  # the same seed gives the same weights, bit for bit
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=0, rtol=0)


def test_write_catalog_keeps_other_entries(tmp_path):
    toml = tmp_path / "ingest" / "models" / "spoof.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text('# hand-written\n[[model]]\nid = "hf1"\nkind = "hf"\nref = "x"\n')
    side = tmp_path / "zoo" / "spoof" / "sp1.json"
    side.parent.mkdir(parents=True)
    meta = {"id": "sp1", "task": "spoof", "arch": "cnn1d-wave", "params": 7, "accuracy": 0.5}
    side.write_text(json.dumps({"format": zoo.FORMAT, **meta, "labels": ["real", "fake"]}))
    hf_meta = {**meta, "id": "sp2", "family": "hubert-tiny", "arch": "hubert-tiny"}
    (tmp_path / "zoo" / "spoof" / "sp2").mkdir()
    hfzoo.write_meta(tmp_path / "zoo" / "spoof" / "sp2", {**hf_meta, "labels": ["real", "fake"]})
    for _ in range(2):  # idempotent
        tr.write_catalog("spoof", tmp_path / "zoo", toml)
    models = tomllib.loads(toml.read_text())["model"]
    assert [m["id"] for m in models] == ["hf1", "sp1", "sp2"]
    assert models[1]["ref"] == "../../zoo/spoof/sp1.safetensors" and models[1]["kind"] == "zoo"
    assert models[2]["ref"] == "../../zoo/spoof/sp2" and models[2]["kind"] == "hf"
    assert models[2]["backbone"] == "hubert-tiny"
    assert models[1]["accuracy"] == 0.5 and models[1]["labels"] == ["real", "fake"]


# --- label mapping ----------------------------------------------------------------------


def test_label_mapping_rules():
    task = ["neutral", "happy", "angry"]
    assert resolve_label_map(["angry", "neutral", "happy"], task) == [2, 0, 1]
    assert resolve_label_map(["ANGRY", "Neutral", "happy"], task) == [2, 0, 1]  # case
    # several model labels may sum into one task label
    assert resolve_label_map(["ang", "neu", "calm", "hap"], task, {"ang": "angry",
        "neu": "neutral", "calm": "neutral", "hap": "happy"}) == [2, 0, 0, 1]  # fmt: skip
    with pytest.raises(LabelMappingError, match=r"'fear'.*label_map"):
        resolve_label_map(["neutral", "happy", "angry", "fear"], task)
    with pytest.raises(LabelMappingError, match="not a task label"):
        resolve_label_map(["neutral", "happy", "angry"], task, {"angry": "furious"})
    with pytest.raises(LabelMappingError, match="not a model label"):
        resolve_label_map(["neutral", "happy", "angry"], task, {"sad": "neutral"})
    with pytest.raises(LabelMappingError, match=r"\['angry'\] get no model output"):
        resolve_label_map(["neutral", "happy"], task)


# --- Hugging Face checkpoints saved locally ------------------------------------------------


def _save(model, extractor, path: Path) -> str:
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def hf_wav2vec2(tmp_path_factory) -> str:
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    names = ["ang", "Neutral", "hap", "exc"]  # IEMOCAP-style names, one extra class
    cfg = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, classifier_proj_size=16, num_labels=len(names),
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
    )  # fmt: skip
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(cfg)
    return _save(model, Wav2Vec2FeatureExtractor(), tmp_path_factory.mktemp("w2v2"))


def _clips(n: int = 3, seconds: float = 1.2) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * SR)) / SR
    tones = [np.sin(2 * np.pi * f * t) * 0.3 for f in (220.0, 523.0, 1900.0)[:n]]
    return np.stack([x + 0.05 * rng.standard_normal(len(t)) for x in tones]).astype(np.float32)


def _hf_reference(path: str, clips: np.ndarray) -> torch.Tensor:
    """Probabilities the Hugging Face way: numpy feature extractor, model, softmax."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    fe = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModelForAudioClassification.from_pretrained(path).eval()
    inputs = fe(list(clips), sampling_rate=SR, return_tensors="pt")
    inputs.pop("attention_mask", None)
    with torch.no_grad():
        return model(**inputs).logits.softmax(-1)


def test_hf_wav2vec2_adapter_maps_and_sums_labels(hf_wav2vec2):
    assert model_labels("hf", hf_wav2vec2) == ["ang", "Neutral", "hap", "exc"]
    task = ["neutral", "happy", "angry"]
    label_map = {"ang": "angry", "hap": "happy", "exc": "happy"}
    clf = load_classifier("hf", hf_wav2vec2, task, label_map=label_map)
    clips = _clips()
    probs = clf(torch.from_numpy(clips))
    ref = _hf_reference(hf_wav2vec2, clips)
    # task order: neutral <- Neutral, happy <- hap + exc, angry <- ang
    expected = torch.stack([ref[:, 1], ref[:, 2] + ref[:, 3], ref[:, 0]], dim=1)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(clips)))


def test_hf_unmappable_label_is_an_error_naming_the_fix(hf_wav2vec2):
    with pytest.raises(LabelMappingError, match=r"'exc'.*label_map"):
        load_classifier("hf", hf_wav2vec2, ["neutral", "happy", "angry"], {"ang": "angry",
                        "hap": "happy"})  # fmt: skip


def test_hf_never_downloads_by_default(tmp_path):
    with pytest.raises(SigwhError, match="downloads are off"):
        load_classifier("hf", "sigwh-test/no-such-model", ["a", "b"])
    with pytest.raises(SigwhError, match="no config.json locally"):
        model_labels("hf", "sigwh-test/no-such-model")


def test_hf_whisper_and_ast_adapters_match_hf_pipeline(tmp_path):
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTForAudioClassification,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForAudioClassification,
    )

    labels = {0: "real", 1: "fake"}
    torch.manual_seed(0)
    whisper = WhisperForAudioClassification(WhisperConfig(
        d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, id2label=labels,
    ))  # fmt: skip
    ast = ASTForAudioClassification(ASTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_length=200, frequency_stride=16, time_stride=16, id2label=labels,
    ))  # fmt: skip
    clips = _clips(2)
    for name, model, fe in (
        ("whisper", whisper, WhisperFeatureExtractor()),
        ("ast", ast, ASTFeatureExtractor(max_length=200)),
    ):
        path = _save(model, fe, tmp_path / name)
        probs = load_classifier("hf", path, ["real", "fake"])(torch.from_numpy(clips))
        torch.testing.assert_close(probs, _hf_reference(path, clips), atol=1e-4, rtol=1e-3)


# --- the CLI ---------------------------------------------------------------------------


def test_zoo_cli_trains_and_evaluates(tmp_path):
    """`sigwh zoo train` on a tiny copy of the spoof eval split, then `sigwh zoo evaluate`."""
    import shutil

    from typer.testing import CliRunner

    from sigwarehouse.cli.zoo import zoo_app

    corpus = tmp_path / "corpus" / "spoof"
    for label in TASKS["spoof"]["labels"]:
        for split in ("train", "eval"):
            (corpus / split / label).mkdir(parents=True)
            for src in sorted((ROOT / "data/corpus/spoof/eval" / label).glob("*.flac"))[:3]:
                shutil.copy(src, corpus / split / label / src.name)
    catalog = tmp_path / "ingest"
    catalog.mkdir()
    shutil.copy(INGEST / "tasks.toml", catalog / "tasks.toml")
    common = ["--task", "spoof", "--model", "sp2", "--data", str(tmp_path / "corpus"),
              "--out", str(tmp_path / "zoo"), "--catalog", str(catalog)]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(zoo_app, ["train", *common, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "sp2: eval accuracy" in result.output
    entry = tomllib.loads((catalog / "models" / "spoof.toml").read_text())["model"][0]
    assert entry["kind"] == "hf"
    assert (catalog / "models" / entry["ref"]).resolve() == tmp_path / "zoo/spoof/sp2"
    result = runner.invoke(zoo_app, ["evaluate", *common[:-2], "--seconds", "0.05", "--batch", "4"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[1].split()
    assert row[:2] == ["sp2", "hubert-tiny"] and float(row[4]) == float(row[5])
    result = runner.invoke(zoo_app, ["train", "--task", "spoof", "--model", "vc1"])
    assert result.exit_code != 0 and "not spoof zoo ids" in result.output
