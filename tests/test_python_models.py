"""`kind = "python"` models: `ref = "package.module:factory"`, real code (tests/pymodels.py,
the tone classifier of freqrex/toy.py behind a factory, and its broken variants).

Properties: a good factory gives the network's own softmax in task order (label_map sums
included) whether it returns numpy or torch; every defect (no module, no factory, a
factory that raises, no labels, the wrong shape, NaN, Inf, negative values, rows not
summing to 1, a call that raises) is one PythonModelError at load time that names the
model and the fix, and outputs are checked again on every call; the object cannot change
the caller's waveforms; the catalog validates python refs and reads labels from the
factory; a python ref stored in a warehouse file is never imported; `sigwh ingest` runs a
python model end to end, and refuses a broken one before it writes anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
import torch
from light_params import ARGS
from pymodels import net
from sharing import digest, sigwh

from sigwarehouse import catalog, store
from sigwarehouse.errors import SigwhError
from sigwarehouse.freqrex.toy import LABELS, SAMPLE_RATE, tone_clip
from sigwarehouse.models.factory import PROB_TOL, PythonModelError
from sigwarehouse.models.labels import model_labels
from sigwarehouse.models.loader import load_classifier, load_models
from sigwarehouse.models.trust import ModelSource
from sigwarehouse.records import ModelRecord

FIX = "fix the factory's __call__: for float32 waveforms (batch, samples) it must return"


def _waves(n: int = 3, n_samples: int = 8000) -> torch.Tensor:
    rng = np.random.default_rng(1)
    return torch.from_numpy(np.stack([tone_clip(LABELS[i % 4], n_samples, rng) for i in range(n)]))


def _load(name: str, labels: list[str] = LABELS, **kw):
    return load_classifier("python", f"pymodels:{name}", labels, name="t1", **kw)


def test_a_factory_gives_the_networks_softmax_in_task_order() -> None:
    x = _waves()
    with torch.inference_mode():
        direct = torch.softmax(net()(x), dim=-1)  # the network itself, no adapter
    clf = _load("tones")
    assert (clf.labels, clf.sample_rate, clf.model_labels) == (LABELS, SAMPLE_RATE, LABELS)
    torch.testing.assert_close(clf(x), direct)
    torch.testing.assert_close(_load("torch_out")(x), direct)  # a tensor is as good
    permuted = LABELS[::-1]
    torch.testing.assert_close(_load("tones", permuted)(x), direct[:, [3, 2, 1, 0]])
    merged = _load(
        "tones", ["quiet", "tone"], label_map={"low": "tone", "high": "tone", "chord": "tone"}
    )
    expected = torch.stack([direct[:, 0], direct[:, 1:].sum(-1)], dim=1)
    torch.testing.assert_close(merged(x), expected)


def test_the_object_cannot_change_the_callers_waveforms() -> None:
    x = _waves()
    before = x.clone()
    _load("mutates")(x)
    assert torch.equal(x, before)


BAD = {
    # name: (what the message says, the fix it names)
    "columns": ("returned shape (2, 3) for 2 waveform(s); expected (2, 4)", FIX),
    "transposed": ("returned shape (4, 2) for 2 waveform(s); expected (2, 4)", FIX),
    "nans": ("returned NaN (row 0: [nan,", FIX),
    "infs": ("returned Inf (row 1: [", FIX),
    "negative": ("returned negative probabilities (row 1: [-", FIX),
    "logits": ("returned rows that do not sum to 1 (row 0 sums to", FIX),
    "raises": (
        "calling it on waveforms shaped (2, 8000) raised RuntimeError: the model wants 2-D input",
        "fix the factory's __call__",
    ),
    "broken_factory": (
        "the factory raised FileNotFoundError: weights.bin",
        "fix the factory (it is called with no arguments",
    ),
    "no_labels": ("the factory's object needs `labels`, a non-empty list", "ingest/README.md"),
    "bad_rate": ("the factory's object needs `sample_rate`, an int in Hz (got '16k')", "README"),
    "not_callable": ("the factory's object is not callable", "__call__(waves)"),
    "NOT_A_FACTORY": ("'NOT_A_FACTORY' is not callable", "ref must name a factory"),
    "nowhere": ("module 'pymodels' has no 'nowhere'", "fix the part after the colon"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_broken_factory_is_one_clear_error_at_load_time(name: str) -> None:
    says, fix = BAD[name]
    with pytest.raises(PythonModelError) as err:
        _load(name)
    message = str(err.value)
    assert message.startswith(f"model t1 (python pymodels:{name}): ")
    assert says in message and fix in message


def test_rows_may_miss_one_by_the_tolerance_and_no_more() -> None:
    from sigwarehouse.models.factory import check_probs

    ok = np.array([[0.5 + PROB_TOL * 0.9, 0.5], [-PROB_TOL * 0.9, 1.0]])
    assert check_probs(ok, 2, ["a", "b"], "m").dtype == np.float32
    with pytest.raises(PythonModelError, match="do not sum to 1 .row 0 sums to 1.0011"):
        check_probs(np.array([[0.5 + PROB_TOL * 1.1, 0.5]]), 1, ["a", "b"], "m")
    with pytest.raises(PythonModelError, match="negative probabilities"):
        check_probs(np.array([[-PROB_TOL * 1.1, 1.0 + PROB_TOL * 1.1]]), 1, ["a", "b"], "m")
    with pytest.raises(PythonModelError, match=r"returned NaN and Inf \(row 0"):
        check_probs(np.array([[np.nan, np.inf]]), 1, ["a", "b"], "m")
    with pytest.raises(PythonModelError, match="returned str, not numbers"):
        check_probs("0.5,0.5", 1, ["a", "b"], "m")


def test_outputs_are_checked_on_every_call_not_only_at_load() -> None:
    clf = _load("nan_on_long_input")  # passes the 0.5 s probe
    with pytest.raises(
        PythonModelError, match=r"model t1 \(python pymodels:nan_on_long_input\): returned NaN"
    ):
        clf(_waves(n_samples=SAMPLE_RATE))


def test_a_module_that_cannot_be_imported_names_the_model_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PythonModelError) as err:
        load_classifier("python", "no_such_pkg.models:make", LABELS, name="t1")
    assert str(err.value) == (
        "model t1 (python no_such_pkg.models:make): cannot import module 'no_such_pkg.models' "
        "(ModuleNotFoundError: No module named 'no_such_pkg'); install the package that "
        "provides it in this environment, or add its folder to PYTHONPATH, and check the "
        "spelling of `ref` in its catalog entry"
    )
    (tmp_path / "crashes_on_import.py").write_text("import numpy\nraise OSError('no GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PythonModelError, match=r"cannot import module 'crashes_on_import' \(OSError: no GPU\)"
    ):
        load_classifier("python", "crashes_on_import:make", LABELS, name="t1")
    with pytest.raises(PythonModelError, match="is not of the form 'package.module:factory'"):
        load_classifier("python", "pymodels.tones", LABELS, name="t1")


def test_load_models_passes_the_python_error_through_unwrapped(tmp_path: Path) -> None:
    record = ModelRecord("t1", "t", "python", "pymodels:nans", LABELS, None)
    with pytest.raises(PythonModelError) as err:
        load_models([record], LABELS, "cpu", source=ModelSource(trust_warehouse=True))
    assert str(err.value).startswith("model t1 (python pymodels:nans): returned NaN")
    assert "could not be loaded" not in str(err.value)


# --- the catalog ------------------------------------------------------------------------


def _catalog(root: Path, models: str, audio: Path | None = None) -> Path:
    cat = root / "ingest"
    (cat / "models").mkdir(parents=True, exist_ok=True)
    (cat / "tasks.toml").write_text(f"[tones]\nlabels = {LABELS!r}\n".replace("'", '"'))
    (cat / "models" / "tones.toml").write_text(models)
    if audio is not None:
        (cat / "datasets").mkdir(exist_ok=True)
        (cat / "datasets" / "tones-eval.toml").write_text(f'task = "tones"\nroot = "{audio}"\n')
    return cat


def _entry(ref: str, extra: str = "") -> str:
    return f'[[model]]\nid = "t1"\ntask = "tones"\nkind = "python"\nref = "{ref}"\n{extra}'


def test_the_catalog_reads_a_factorys_labels_and_checks_its_ref(tmp_path: Path) -> None:
    cat = catalog.load(_catalog(tmp_path / "a", _entry("pymodels:tones", 'license = "MIT"\n')))
    entry = cat.models["t1"]
    assert (entry.ref, entry.labels, entry.license) == ("pymodels:tones", LABELS, "MIT")
    assert model_labels("python", "pymodels:tones") == LABELS
    wrong = _entry("pymodels:tones", 'labels = ["quiet", "high", "low", "chord"]\n')
    with pytest.raises(catalog.CatalogError, match="disagrees with the model's own labels"):
        catalog.load(_catalog(tmp_path / "b", wrong))
    with pytest.raises(catalog.CatalogError) as err:
        catalog.load(_catalog(tmp_path / "c", _entry("pymodels.tones")))
    assert "key 'model[0] (id 't1').ref': ref 'pymodels.tones' is not of the form" in str(err.value)


def test_a_factory_not_installed_here_is_trusted_only_with_its_labels(tmp_path: Path) -> None:
    listed = _entry("lab_models.net:make", f"labels = {LABELS!r}\n".replace("'", '"'))
    assert catalog.load(_catalog(tmp_path / "a", listed)).models["t1"].labels == LABELS
    with pytest.raises(catalog.CatalogError) as err:
        catalog.load(_catalog(tmp_path / "b", _entry("lab_models.net:make")))
    assert "key 'model[0] (id 't1').labels': missing, and the model's files do not give" in str(
        err.value
    )
    assert "cannot import module 'lab_models.net'" in str(err.value)


# --- a warehouse file never names the code that runs --------------------------------------


MARKER = "import pathlib\npathlib.Path({marker!r}).write_text('warehouse code ran')\n"


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module that leaves a marker file when imported, importable here: the ref a
    warehouse's author could store."""
    marker = tmp_path / "ran.txt"
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "theirs.py").write_text(
        MARKER.format(marker=str(marker)) + "from pymodels import tones as make\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "planted"))
    monkeypatch.delitem(sys.modules, "theirs", raising=False)
    return "theirs:make", marker


def test_a_python_ref_stored_in_a_warehouse_is_never_imported(planted, tmp_path: Path) -> None:
    ref, marker = planted
    record = ModelRecord("t1", "tones", "python", ref, LABELS, None)
    mine = ModelSource(catalog_dir=_catalog(tmp_path / "mine", _entry("pymodels:tones")))
    loaded = load_models([record], LABELS, "cpu", source=mine)
    assert loaded["t1"].ref == "pymodels:tones"
    unlisted = ModelSource(catalog_dir=_catalog(tmp_path / "none", ""))
    with pytest.raises(
        SigwhError, match="model t1 is a python model whose ref .theirs:make. comes"
    ):
        load_models([record], LABELS, "cpu", source=unlisted)
    assert not marker.exists() and "theirs" not in sys.modules
    # only the user's explicit trust loads the stored ref
    load_models([record], LABELS, "cpu", source=ModelSource(trust_warehouse=True))
    assert marker.exists()


def _warehouse_with_stored_python_model(path: Path, ref: str) -> Path:
    path, _ = store.init(path)
    from sigwarehouse.audio import encode_flac

    with store.opened(path) as con:
        con.execute("INSERT INTO tasks VALUES ('tones', ?, 16000, 0.5, NULL)", [LABELS])
        con.execute("INSERT INTO datasets VALUES ('d', 'tones', '/nowhere', 'folder', NULL, NULL)")
        con.execute(
            "INSERT INTO models (model, task, kind, ref, labels)"
            " VALUES ('t1', 'tones', 'python', ?, ?)",
            [ref, LABELS],
        )
        wave = tone_clip("low", 8000, np.random.default_rng(0))
        con.execute(
            "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s, "
            "native_sample_rate, native_channels, n_samples, audio) "
            "VALUES (1, 'd', 'low/1.wav', 'h', 'low', 0.5, 16000, 1, 8000, ?)",
            [encode_flac(wave, 16000)],
        )
    return path


def test_sigwh_ingest_refuses_a_stored_python_ref_and_writes_nothing(
    planted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, marker = planted
    path = _warehouse_with_stored_python_model(tmp_path / "wh" / "warehouse.duckdb", ref)
    monkeypatch.setenv("SIGWH_CATALOG", str(_catalog(tmp_path / "cat", "")))
    before = digest(path.parent)
    result = sigwh(path, "ingest", "--model", "t1", "--device", "cpu", *ARGS)
    assert result.exit_code == 1, result.output
    assert "error: model t1 is a python model whose ref (theirs:make) comes from the warehouse" in (
        result.output
    )
    assert "Traceback" not in result.output
    assert digest(path.parent) == before and not marker.exists()


# --- end to end through `sigwh` -----------------------------------------------------------


def _tone_audio(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for label in ("low", "chord"):
        (root / label).mkdir(parents=True)
        sf.write(root / label / f"{label}.wav", tone_clip(label, 8000, rng), SAMPLE_RATE)
    return root


def test_sigwh_ingest_explains_a_python_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = _tone_audio(tmp_path / "audio")
    cat = _catalog(tmp_path, _entry("pymodels:tones"), audio)
    monkeypatch.setenv("SIGWH_CATALOG", str(cat))
    path = tmp_path / "warehouse.duckdb"
    for args in (["init"], ["catalog", "sync"], ["dataset", "add", "tones-eval"]):
        result = sigwh(path, *args)
        assert result.exit_code == 0, result.output
    result = sigwh(path, "ingest", "--model", "t1", "--device", "cpu", *ARGS)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(path), read_only=True)
    try:
        runs = con.execute("SELECT status, n_errors FROM runs").fetchall()
        top1 = con.execute(
            "SELECT c.label, o.top1 FROM original_probs o JOIN clips c USING (clip_id) ORDER BY 1"
        ).fetchall()
        n = con.execute("SELECT count(*) FROM explanations WHERE model = 't1'").fetchone()[0]
    finally:
        con.close()
    assert runs == [("done", 0)] and n == 2
    assert top1 == [("chord", LABELS.index("chord")), ("low", LABELS.index("low"))]


def test_sigwh_ingest_stops_a_broken_factory_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = _tone_audio(tmp_path / "audio")
    cat = _catalog(
        tmp_path, _entry("pymodels:nans", f"labels = {LABELS!r}\n".replace("'", '"')), audio
    )
    monkeypatch.setenv("SIGWH_CATALOG", str(cat))
    path = tmp_path / "warehouse.duckdb"
    for args in (["init"], ["catalog", "sync"], ["dataset", "add", "tones-eval"]):
        assert sigwh(path, *args).exit_code == 0
    before = digest(path.parent)
    result = sigwh(path, "ingest", "--model", "t1", "--device", "cpu", *ARGS)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(
        "error: model t1 (python pymodels:nans): returned NaN (row 0: [nan,"
    )
    assert FIX in errors[0] and "Traceback" not in result.output
    assert digest(path.parent) == before


# --- ingest/README.md's worked example ---------------------------------------------------------


def _readme_blocks() -> dict[str, str]:
    """The python, toml and error blocks of ingest/README.md's `kind = "python"` section."""
    import re

    text = (Path(__file__).resolve().parents[1] / "ingest" / "README.md").read_text()
    section = text.split('## `kind = "python"`')[1].split("\n## ")[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    return {
        "python": next(b for lang, b in blocks if lang == "python"),
        "toml": next(b for lang, b in blocks if lang == "toml"),
        "error": next(b for lang, b in blocks if lang == "" and b.startswith("error:")),
    }


def test_the_readme_example_works_and_its_error_is_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _readme_blocks()
    (tmp_path / "code" / "mylab").mkdir(parents=True)
    module = tmp_path / "code" / "mylab" / "bandvad.py"
    module.write_text(blocks["python"])
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    for name in ("mylab", "mylab.bandvad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    cat = tmp_path / "ingest"
    (cat / "models").mkdir(parents=True)
    (cat / "tasks.toml").write_text('[speech]\nlabels = ["speech", "non-speech"]\n')
    (cat / "models" / "speech.toml").write_text(blocks["toml"])
    entry = catalog.load(cat).models["band"]
    assert entry.labels == ["voice", "other"] and entry.license == "MIT"
    clf = load_classifier(
        "python", entry.ref, ["speech", "non-speech"], entry.label_map, name="band"
    )
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    voice_band = np.sin(2 * np.pi * 1000 * t)  # all its energy inside 300-3400 Hz
    rumble = np.sin(2 * np.pi * 60 * t) + 0.001 * rng.standard_normal(16000)
    probs = clf(torch.from_numpy(np.stack([voice_band, rumble]).astype(np.float32)))
    assert probs[0, 0] > 0.99 and probs[1, 1] > 0.99
    # the README's error: the same class with `return voice`
    module.write_text(
        blocks["python"].replace("return np.stack([voice, 1 - voice], axis=1)", "return voice")
    )
    monkeypatch.delitem(sys.modules, "mylab.bandvad")
    with pytest.raises(PythonModelError) as err:
        load_classifier("python", entry.ref, ["speech", "non-speech"], entry.label_map, name="band")
    assert f"error: {err.value}" == blocks["error"].strip()
