"""No code from a warehouse file (issue 17, point 3): a model's kind and ref stored in a
shared warehouse never decide what runs; Hugging Face folders never run their own code
and their weights load only as data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sigwarehouse import store
from sigwarehouse.errors import SigwhError
from sigwarehouse.models.loader import load_models
from sigwarehouse.models.trust import ModelSource, resolve
from sigwarehouse.records import ModelRecord

LABELS = ["neg", "pos"]


def _tiny_hf(folder: Path) -> Path:
    """A real (tiny, random) wav2vec2 audio classifier saved with save_pretrained."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    cfg = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, classifier_proj_size=8, num_labels=2,
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )  # fmt: skip
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"mine": _tiny_hf(root / "mine"), "theirs": _tiny_hf(root / "theirs")}


def _catalog(folder: Path, ref: Path | None) -> Path:
    """A local catalog with task `t`; lists model h1 at `ref` (or no model at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.toml").write_text('[t]\nlabels = ["neg", "pos"]\n')
    if ref is not None:
        (folder / "models").mkdir(exist_ok=True)
        (folder / "models" / "m.toml").write_text(
            f'[[model]]\nid = "h1"\ntask = "t"\nkind = "hf"\nref = "{ref}"\n'
        )
    return folder


def _record(ref: Path, kind: str = "hf", model: str = "h1") -> ModelRecord:
    return ModelRecord(model, "t", kind, str(ref), LABELS, None)


def test_a_model_the_local_catalog_does_not_list_is_refused(hf_dirs, tmp_path: Path) -> None:
    record = _record(hf_dirs["theirs"])
    source = ModelSource(catalog_dir=_catalog(tmp_path / "cat", None))
    with pytest.raises(SigwhError) as err:
        resolve([record], source)
    assert str(err.value) == (
        f"model h1 is a hf model whose ref ({hf_dirs['theirs']}) comes from the warehouse "
        f"file, and the catalog on this machine ({tmp_path / 'cat'}) does not list it; models "
        "other than zoo checkpoints load only from your own catalog: add it to "
        f"{tmp_path / 'cat'}/models/*.toml, or pass `sigwh --trust-warehouse-models` if you "
        "trust the warehouse's author"
    )
    missing = ModelSource(catalog_dir=tmp_path / "nowhere")
    with pytest.raises(SigwhError, match=r"model h1 \(hf\) load only from the catalog"):
        resolve([record], missing)


def test_the_local_catalog_decides_which_folder_loads(hf_dirs, tmp_path: Path) -> None:
    source = ModelSource(catalog_dir=_catalog(tmp_path / "cat", hf_dirs["mine"]))
    loaded = load_models([_record(hf_dirs["theirs"])], LABELS, "cpu", source=source)
    assert loaded["h1"].ref == str(hf_dirs["mine"])
    trusted = load_models(
        [_record(hf_dirs["theirs"])], LABELS, "cpu", source=ModelSource(trust_warehouse=True)
    )
    assert trusted["h1"].ref == str(hf_dirs["theirs"])


def test_zoo_checkpoints_are_data_and_load_as_stored(tmp_path: Path) -> None:
    record = _record(tmp_path / "x.safetensors", kind="zoo", model="z1")
    assert resolve([record], ModelSource(catalog_dir=tmp_path / "nowhere")) == [record]


MARKER_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("code from the model folder ran")
"""


def test_a_model_folder_never_runs_its_own_code(hf_dirs, tmp_path: Path) -> None:
    """A folder whose config names custom code (auto_map) and whose weights are a pickle
    that runs code when unpickled: loading fails, and neither ran."""
    import torch

    marker = tmp_path / "ran.txt"
    source = ModelSource(trust_warehouse=True)  # even when the user trusts the file

    def with_custom_code(name: str, model_type: str | None) -> Path:
        folder = tmp_path / name
        shutil.copytree(hf_dirs["mine"], folder)
        (folder / "evil_modeling.py").write_text(MARKER_CODE.format(marker=str(marker)))
        config = json.loads((folder / "config.json").read_text())
        config["auto_map"] = {
            "AutoConfig": "evil_modeling.EvilConfig",
            "AutoModelForAudioClassification": "evil_modeling.EvilModel",
        }
        if model_type:
            config["model_type"] = model_type
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    # a known architecture that also names custom code: the built-in class loads
    loaded = load_models([_record(with_custom_code("named", None))], LABELS, "cpu", source=source)
    assert type(loaded["h1"].model).__module__.startswith("transformers.models.wav2vec2")
    # an architecture only the folder's code defines: refused
    with pytest.raises(SigwhError, match="h1 .*could not be loaded"):
        load_models([_record(with_custom_code("only", "evil-net"))], LABELS, "cpu", source=source)
    assert not marker.exists()

    class Payload:
        def __reduce__(self):
            return (exec, (MARKER_CODE.format(marker=str(marker)),))

    pickled = tmp_path / "pickled"
    shutil.copytree(hf_dirs["mine"], pickled)
    (pickled / "model.safetensors").unlink()
    torch.save({"payload": Payload()}, pickled / "pytorch_model.bin", pickle_protocol=2)
    with pytest.raises(SigwhError, match="h1 .*could not be loaded: Weights only load failed"):
        load_models([_record(pickled)], LABELS, "cpu", source=source)
    assert not marker.exists()


def test_sigwh_ingest_refuses_a_warehouse_model_and_writes_nothing(
    hf_dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from sharing import digest, sigwh

    from sigwarehouse.audio import encode_flac

    path, _ = store.init(tmp_path / "wh" / "warehouse.duckdb")
    with store.opened(path) as con:
        con.execute("INSERT INTO tasks VALUES ('t', ['neg', 'pos'], 16000, 0.5, NULL)")
        con.execute("INSERT INTO datasets VALUES ('d', 't', '/nowhere', 'folder', NULL, NULL)")
        con.execute(
            "INSERT INTO models (model, task, kind, ref, labels) VALUES ('h1', 't', 'hf', ?, ?)",
            [str(hf_dirs["theirs"]), LABELS],
        )
        wave = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
        con.execute(
            "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s, "
            "native_sample_rate, native_channels, n_samples, audio) "
            "VALUES (1, 'd', 'pos/1.wav', 'h', 'pos', 1.0, 16000, 1, 16000, ?)",
            [encode_flac(wave, 16000)],
        )
    monkeypatch.setenv("SIGWH_CATALOG", str(_catalog(tmp_path / "cat", None)))
    before = digest(path.parent)
    result = sigwh(path, "ingest", "--model", "h1", "--device", "cpu")
    assert result.exit_code == 1
    assert "error: model h1 is a hf model whose ref" in result.output
    assert "pass `sigwh --trust-warehouse-models`" in result.output
    assert "Traceback" not in result.output
    assert digest(path.parent) == before
