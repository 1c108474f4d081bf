"""The gender and speech/music evaluation sets of real recordings (data/gender,
data/speech-music): committed files match their manifests, real recordings come first, the
gender labels agree with an independent pitch measurement, and the builder is deterministic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sigwarehouse import catalog
from sigwarehouse.corpus import realsets
from sigwarehouse.corpus.build import read_manifest
from sigwarehouse.corpus.debian import MissingPackagesError, Package

REPO = Path(__file__).resolve().parents[1]
SETS = {"gender": REPO / "data" / "gender", "speech-music": REPO / "data" / "speech-music"}
LABELS = {"gender": ["female", "male"], "speech-music": ["speech", "music"]}
SR = 16000


def _rows(task: str) -> list[dict]:
    return read_manifest(SETS[task] / "manifest.csv")


def _median_f0(x: np.ndarray) -> float:
    """Median pitch (Hz) over voiced 40 ms frames: the lag of the highest normalised
    autocorrelation peak between 60 and 400 Hz, kept where it exceeds 0.5."""
    n, hop = 640, 160
    starts = range(0, len(x) - n, hop)
    energy = np.array([np.mean(x[i : i + n] ** 2) for i in starts])
    floor = 0.1 * np.percentile(energy, 95)
    f0 = []
    for e, i in zip(energy, starts, strict=True):
        if e < floor:
            continue
        frame = x[i : i + n] - x[i : i + n].mean()
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = SR // 400, SR // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            f0.append(SR / lag)
    return float(np.median(f0))


@pytest.mark.parametrize("task", SETS)
def test_manifest_matches_every_file_and_clips_are_16k_mono_1_to_4_s(task):
    root, rows = SETS[task], _rows(task)
    assert {r["path"] for r in rows} == {
        str(p.relative_to(root)) for p in root.glob("eval/*/*.flac")
    }
    for r in rows:
        path = root / r["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"], r["path"]
        x, sr = sf.read(path, dtype="float64", always_2d=True)
        assert (sr, x.shape[1]) == (SR, 1)
        assert 1.0 <= len(x) / SR <= 4.0
        assert len(x) / SR == pytest.approx(float(r["duration_s"]), abs=1e-3)
        assert r["task"] == task and r["label"] == Path(r["path"]).parent.name
    assert len({r["sha256"] for r in rows}) == len(rows)  # no clip twice
    assert sum((root / r["path"]).stat().st_size for r in rows) < 2e6


@pytest.mark.parametrize("task", SETS)
def test_each_label_has_12_real_recordings_first_then_rendered_copies(task):
    rows = _rows(task)
    for label in LABELS[task]:
        mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["path"])
        kinds = [r["source"].endswith("real]") for r in mine]
        assert kinds == [True] * 12 + [False] * 3, (label, kinds)
        # the demo's first clips: four real recordings from at least three sources (package
        # and directory: one voice; pocketsphinx's top-level utterances count as one)
        sources = {r["source"].split(" [")[0].rsplit("/", 1)[0] for r in mine[:4]}
        sources = {s if "/" in s or ".raw" not in s else "cmu" for s in sources}
        assert len(sources) >= 3, sources
        # no source file is cut twice within a label
        files = [r["source"].split(" [")[0] for r in mine]
        assert len(set(files)) == len(files)


def test_real_gender_labels_agree_with_the_measured_pitch():
    rows = [r for r in _rows("gender") if r["source"].endswith("real]")]
    for r in rows:
        x, _ = sf.read(SETS["gender"] / r["path"], dtype="float64")
        f0 = _median_f0(x)
        if r["label"] == "male":
            assert f0 < 130, (r["path"], f0)
        else:
            assert f0 > 165, (r["path"], f0)


def test_bandwidth_alone_does_not_separate_the_real_gender_clips():
    """The female prompts are 8 kHz recordings; half the male ones go through an 8 kHz
    channel too: each label has at least 6 real clips with almost no energy above 4 kHz."""
    narrow: dict[str, int] = {"female": 0, "male": 0}
    for r in _rows("gender"):
        if r["source"].endswith("real]"):
            x, _ = sf.read(SETS["gender"] / r["path"], dtype="float64")
            power = np.abs(np.fft.rfft(x)) ** 2
            high = power[np.fft.rfftfreq(len(x), 1 / SR) > 4100].sum() / power.sum()
            narrow[r["label"]] += bool(high < 1e-3)
    assert narrow["female"] >= 6 and narrow["male"] >= 6, narrow


def test_catalog_has_both_tasks_and_datasets():
    cat = catalog.load(REPO / "ingest")
    for task, root in SETS.items():
        assert cat.tasks[task].labels == LABELS[task]
        assert cat.tasks[task].sample_rate == SR
        assert cat.datasets[f"{task}-eval"].root == str(root / "eval")
        assert cat.datasets[f"{task}-eval"].task == task


@pytest.mark.skipif(
    bool(realsets.missing_packages()),
    reason=f"Debian packages not installed: {' '.join(realsets.missing_packages())}",
)
@pytest.mark.parametrize("task", SETS)
def test_rebuild_gives_the_committed_samples(task, tmp_path):
    rows = realsets.build_set(task, REPO / "data" / "corpus", tmp_path / task, seed=0)
    assert [r["path"] for r in rows] == [r["path"] for r in _rows(task)]
    for r in rows:
        new, _ = sf.read(tmp_path / task / r["path"], dtype="int16")
        old, _ = sf.read(SETS[task] / r["path"], dtype="int16")
        np.testing.assert_array_equal(new, old, err_msg=r["path"])


def test_a_missing_source_package_is_named_with_the_apt_command(monkeypatch, tmp_path):
    absent = Package("no-such-package", path=tmp_path / "absent")
    monkeypatch.setattr(realsets, "PACKAGES", (*realsets.PACKAGES, absent))
    with pytest.raises(MissingPackagesError, match="apt-get install .*no-such-package"):
        realsets.build_set("gender", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
