"""The catalog: TOML in, validated rows out; every refusal names the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from sigwarehouse import catalog
from sigwarehouse.cli import main_options
from sigwarehouse.cli.catalog import catalog_app
from sigwarehouse.cli.dataset import dataset_app

REPO = Path(__file__).resolve().parents[1]
EMOTION = ["neutral", "calm", "happy", "sad", "angry"]


def sigwh_app() -> typer.Typer:
    """`sigwh` with the catalog and dataset groups, the global options taken from the real CLI."""
    app = typer.Typer()
    app.callback()(main_options)
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(dataset_app, name="dataset")
    return app


@pytest.fixture
def sigwh(wh_path: Path):
    runner = CliRunner()
    app = sigwh_app()

    def invoke(*args: str, expect: int = 0):
        result = runner.invoke(app, ["--warehouse", str(wh_path), *args])
        assert result.exit_code == expect, (result.output, result.exception)
        return result

    return invoke


TASKS = """
[emotion]
labels = ["neutral", "calm", "happy", "sad", "angry"]
sample_rate = 16000
min_duration_s = 0.5

[spoof]
labels = ["real", "fake"]
"""

DATASET = """
name = "emotion-eval"
task = "emotion"
root = "../../audio/emotion"
"""

MODELS = """
[[model]]
id = "vc1"
task = "emotion"
kind = "zoo"
ref = "../../zoo/vc1.pt"
backbone = "cnn1d-wave"
params = 48213
labels = ["neutral", "calm", "happy", "sad", "angry"]
accuracy = 0.86
accuracy_n = 50

[[model]]
id = "hf1"
task = "emotion"
kind = "hf"
ref = "../../hf1"
label_map = { neu = "neutral", hap = "happy", ang = "angry" }
"""


@pytest.fixture
def cat_dir(tmp_path: Path) -> Path:
    """A small valid catalog: two tasks, one dataset, a zoo model and a local hf model."""
    root = tmp_path / "ingest"
    (root / "datasets").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "tasks.toml").write_text(TASKS)
    (root / "datasets" / "emotion-eval.toml").write_text(DATASET)
    (root / "models" / "emotion.toml").write_text(MODELS)
    hf = tmp_path / "hf1"
    hf.mkdir()
    id2label = {"0": "neu", "1": "calm", "2": "hap", "3": "sad", "4": "ang"}
    (hf / "config.json").write_text(json.dumps({"id2label": id2label}))
    return root


def rows(wh_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(wh_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_sync_loads_typed_rows(sigwh, cat_dir: Path, wh_path: Path, tmp_path: Path) -> None:
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir)).output
    assert "tasks: 2 added, 0 changed, 0 unchanged" in out
    assert "models: 2 added" in out
    assert rows(
        wh_path, "SELECT task, labels, sample_rate, min_duration_s FROM tasks ORDER BY 1"
    ) == [
        ("emotion", EMOTION, 16000, 0.5),
        ("spoof", ["real", "fake"], 16000, 0.5),
    ]
    assert rows(wh_path, "SELECT dataset, task, root, labels_from, label_spec FROM datasets") == [
        ("emotion-eval", "emotion", str((tmp_path / "audio" / "emotion").resolve()), "folder", None)
    ]
    models = rows(
        wh_path,
        "SELECT model, kind, ref, backbone, n_params, labels, label_map, reported_accuracy, "
        "reported_accuracy_n, source_file FROM models ORDER BY model",
    )
    hf1, vc1 = models
    # hf labels come from the local config.json, in id order; the map covers every label.
    assert hf1[:6] == (
        "hf1",
        "hf",
        str(tmp_path / "hf1"),
        None,
        None,
        ["neu", "calm", "hap", "sad", "ang"],
    )
    assert json.loads(hf1[6]) == dict(zip(hf1[5], EMOTION, strict=True))
    assert vc1 == (
        "vc1",
        "zoo",
        str(tmp_path / "zoo" / "vc1.pt"),
        "cnn1d-wave",
        48213,
        EMOTION,
        json.dumps({label: label for label in EMOTION}),
        0.86,
        50,  # the clips the catalog's accuracy was measured on
        "models/emotion.toml",
    )
    listed = sigwh("catalog", "list").output
    assert "emotion-eval" in listed and "hf1" in listed and "spoof" in listed


def test_resync_is_idempotent_and_reports_changes(sigwh, cat_dir: Path, wh_path: Path) -> None:
    sigwh("catalog", "sync", "--catalog", str(cat_dir))
    before = rows(wh_path, "SELECT * FROM models ORDER BY model")
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir)).output
    assert "tasks: 0 added, 0 changed, 2 unchanged" in out
    assert "datasets: 0 added, 0 changed, 1 unchanged" in out
    assert "models: 0 added, 0 changed, 2 unchanged" in out
    assert rows(wh_path, "SELECT * FROM models ORDER BY model") == before

    models = cat_dir / "models" / "emotion.toml"
    models.write_text(models.read_text().replace("accuracy = 0.86", "accuracy = 0.9"))
    (cat_dir / "datasets" / "emotion-eval.toml").unlink()
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir)).output
    assert "models: 0 added, 1 changed, 1 unchanged (changed: vc1)" in out
    assert "not in the catalog any more (kept): emotion-eval" in out
    assert rows(wh_path, "SELECT reported_accuracy FROM models WHERE model = 'vc1'") == [(0.9,)]


def test_a_model_licence_is_stored_and_follows_the_catalog(
    sigwh, cat_dir: Path, wh_path: Path
) -> None:
    sigwh("catalog", "sync", "--catalog", str(cat_dir))
    assert rows(wh_path, "SELECT model, license FROM models ORDER BY 1") == [
        ("hf1", None),
        ("vc1", None),
    ]
    models = cat_dir / "models" / "emotion.toml"
    text = models.read_text().replace(
        "accuracy = 0.86", 'accuracy = 0.86\nlicense = "MIT OR Apache-2.0"'
    )
    models.write_text(text)
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir)).output
    assert "(changed: vc1)" in out
    assert rows(wh_path, "SELECT license FROM models WHERE model = 'vc1'") == [
        ("MIT OR Apache-2.0",)
    ]
    assert "MIT OR Apache-2.0" in sigwh("catalog", "list").output


def test_catalog_env_var_is_the_default(
    sigwh, cat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGWH_CATALOG", str(cat_dir))
    assert f"synced {cat_dir}" in sigwh("catalog", "sync").output


def test_invalid_toml_names_file_and_line(sigwh, cat_dir: Path, wh_path: Path) -> None:
    bad = cat_dir / "datasets" / "emotion-eval.toml"
    bad.write_text('name = "emotion-eval"\ntask = "emotion\nroot = "x"\n')
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir), expect=1).output
    assert out.startswith(f"error: {bad}: invalid TOML")
    assert "line 2" in out
    assert rows(wh_path, "SELECT count(*) FROM tasks") == [(0,)]


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "datasets/emotion-eval.toml",
            'task = "emotion"\n',
            "",
            "datasets/emotion-eval.toml: key 'task': required key is missing",
        ),
        (
            "tasks.toml",
            "sample_rate = 16000",
            'sample_rate = "16000"',
            "tasks.toml: key 'emotion.sample_rate': Input should be a valid integer",
        ),
        (
            "tasks.toml",
            'labels = ["real", "fake"]',
            'lables = ["real", "fake"]',
            "tasks.toml: key 'spoof.lables': unknown key",
        ),
        (
            "datasets/emotion-eval.toml",
            'task = "emotion"',
            'task = "emotions"',
            "datasets/emotion-eval.toml: key 'task': unknown task 'emotions'",
        ),
        (
            "datasets/emotion-eval.toml",
            'root = "../../audio/emotion"',
            'root = "x"\nlabels_from = "csv"',
            'labels_from = "csv" needs csv =',
        ),
        (
            "models/emotion.toml",
            'kind = "zoo"',
            'kind = "onnx"',
            "models/emotion.toml: key 'model[0] (id 'vc1').kind': "
            "Input should be 'zoo', 'hf' or 'python'",
        ),
    ],
)
def test_bad_entries_are_refused_with_file_and_key(
    sigwh, cat_dir: Path, wh_path: Path, file: str, old: str, new: str, message: str
) -> None:
    path = cat_dir / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir), expect=1).output
    assert message in out
    assert len(out.strip().splitlines()) == 1


def test_unmappable_model_label_is_refused_and_nothing_written(
    sigwh, cat_dir: Path, wh_path: Path
) -> None:
    sigwh("catalog", "sync", "--catalog", str(cat_dir))
    before = {t: rows(wh_path, f"SELECT * FROM {t} ORDER BY 1") for t in ("tasks", "models")}
    (cat_dir / "tasks.toml").write_text(TASKS + '\n[genre]\nlabels = ["rock", "jazz"]\n')
    models = cat_dir / "models" / "emotion.toml"
    models.write_text(models.read_text().replace('"sad", "angry"]', '"sad", "bored"]', 1))
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir), expect=1).output
    assert f"{models}: key 'model[0] (id 'vc1').labels'" in out
    assert "'bored' matches no task label" in out
    # the new task was valid, but the sync is all or nothing
    assert {t: rows(wh_path, f"SELECT * FROM {t} ORDER BY 1") for t in before} == before


def test_label_map_must_cover_every_task_label(sigwh, cat_dir: Path) -> None:
    models = cat_dir / "models" / "emotion.toml"
    models.write_text(models.read_text().replace('ang = "angry"', 'ang = "sad"'))
    out = sigwh("catalog", "sync", "--catalog", str(cat_dir), expect=1).output
    assert "key 'model[1] (id 'hf1').label_map'" in out
    assert "['angry'] get no model output" in out


def test_hf_labels_must_agree_with_config(cat_dir: Path) -> None:
    models = cat_dir / "models" / "emotion.toml"
    text = models.read_text().replace(
        'ref = "../../hf1"', 'ref = "../../hf1"\nlabels = ["calm", "neu", "hap", "sad", "ang"]'
    )
    models.write_text(text)
    with pytest.raises(catalog.CatalogError, match=r"disagrees with the model's own labels"):
        catalog.load(cat_dir)


def test_hub_id_without_labels_is_refused_offline(cat_dir: Path) -> None:
    models = cat_dir / "models" / "emotion.toml"
    models.write_text(models.read_text().replace('"../../hf1"', '"no-such-org/no-such-model"'))
    with pytest.raises(catalog.CatalogError, match=r"key 'model\[1\] \(id 'hf1'\)\.labels'"):
        catalog.load(cat_dir)


def test_duplicate_model_id_names_both_files(cat_dir: Path) -> None:
    (cat_dir / "models" / "more.toml").write_text("[[model]]" + MODELS.split("[[model]]")[1])
    with pytest.raises(
        catalog.CatalogError,
        match=r"more\.toml: model 'vc1' is already defined in models/emotion\.toml",
    ):
        catalog.load(cat_dir)


def test_missing_tasks_file(tmp_path: Path) -> None:
    with pytest.raises(catalog.CatalogError, match="tasks.toml: not found"):
        catalog.load(tmp_path)


def test_shipped_catalog_is_valid() -> None:
    """The repository's own ingest/ loads (labels checked against the zoo's config.json files
    and the CNN's sidecars)."""
    if not (REPO / "ingest" / "tasks.toml").is_file():
        pytest.skip("ingest/tasks.toml is not written yet")
    cat = catalog.load(REPO / "ingest")
    assert cat.tasks["emotion"].labels == EMOTION
    for ds in cat.datasets.values():
        assert ds.task in cat.tasks


def test_unreadable_model_config_is_refused(cat_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "hf1" / "config.json").write_text("{ not json")
    with pytest.raises(
        catalog.CatalogError, match=r"key 'model\[1\] \(id 'hf1'\)\.ref': cannot read"
    ):
        catalog.load(cat_dir)
