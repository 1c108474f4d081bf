"""The shipped demo corpus: the committed eval split, and the deterministic builder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from sigwarehouse.cli.corpus import corpus_app
from sigwarehouse.corpus import TASKS, build_corpus, debian
from sigwarehouse.corpus.build import DEFAULT_EVAL, clip_seed, read_manifest
from sigwarehouse.corpus.speech import EVAL_SENTENCES, TRAIN_SENTENCES
from sigwarehouse.corpus.spoof import griffin_lim
from sigwarehouse.corpus.waveform import SR, fit_length, write_flac

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "corpus"
MANIFEST = read_manifest(CORPUS / "manifest.csv")


def _missing_reason(tasks: list[str]) -> str:
    missing = debian.missing_packages(tasks)
    return f"Debian packages not installed: {' '.join(missing)}" if missing else ""


def test_manifest_lists_every_committed_eval_file_and_nothing_else():
    listed = {r["path"] for r in MANIFEST}
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/eval/*/*.flac")}
    assert listed == on_disk
    assert len(listed) == len(MANIFEST)


@pytest.mark.parametrize("row", MANIFEST, ids=lambda r: r["path"])
def test_eval_clip_is_valid_16k_mono_and_matches_manifest(row):
    path = CORPUS / row["path"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    assert (sr, x.shape[1]) == (SR, 1)
    assert 1.0 <= len(x) / SR <= 4.0
    assert len(x) / SR == pytest.approx(float(row["duration_s"]), abs=1e-3)
    assert np.all(np.isfinite(x)) and 0.0 < np.abs(x).max() <= 1.0
    assert row["split"] == "eval" and row["label"] in TASKS[row["task"]]
    assert row["path"] == f"{row['task']}/eval/{row['label']}/{Path(row['path']).name}"


def test_eval_split_has_the_default_count_per_class():
    for task, labels in TASKS.items():
        for label in labels:
            n = sum(r["task"] == task and r["label"] == label for r in MANIFEST)
            assert n == DEFAULT_EVAL[task], (task, label)


def test_eval_split_is_small_enough_to_commit():
    total = sum((CORPUS / r["path"]).stat().st_size for r in MANIFEST)
    assert total < 8.5e6


def test_eval_draws_on_sources_train_never_sees():
    assert not set(EVAL_SENTENCES) & set(TRAIN_SENTENCES)
    assert all("sentence=eval:" in r["source"] for r in MANIFEST if r["task"] == "emotion")
    # Each real recording belongs to one split; eval real and vocoded clips use eval ones.
    from sigwarehouse.corpus.spoof import recordings

    if _missing_reason(["spoof"]):
        pytest.skip(_missing_reason(["spoof"]))
    eval_recs = {r.name for r in recordings() if r.split == "eval"}
    train_recs = {r.name for r in recordings() if r.split == "train"}
    assert eval_recs and train_recs and not eval_recs & train_recs
    for r in MANIFEST:
        if r["task"] == "spoof" and not r["source"].startswith(("flite", "festival", "espeak")):
            assert r["source"].split(" of ")[-1] in eval_recs, r["source"]


@pytest.mark.parametrize(("task", "floor"), [("emotion", 0.45), ("genre", 0.6), ("spoof", 0.6)])
def test_eval_classes_are_separable_by_a_nearest_centroid_on_log_mel_statistics(task, floor):
    # A guard, not a benchmark: leave-one-out nearest class centroid on per-band log-mel
    # mean and spread must beat chance (0.2 / 0.5) clearly; trained models do far better.
    from scipy.signal import ShortTimeFFT
    from scipy.signal.windows import hann

    from sigwarehouse.corpus.spoof import _mel_filters

    fb, stft = _mel_filters(512, 40), ShortTimeFFT(hann(512, sym=False), hop=256, fs=SR)
    rows = [r for r in MANIFEST if r["task"] == task]
    feats = []
    for r in rows:
        x, _ = sf.read(CORPUS / r["path"], dtype="float64")
        m = np.log(fb @ np.abs(stft.stft(x)) ** 2 + 1e-8)
        feats.append(np.concatenate([m.mean(1), m.std(1)]))
    x = np.array(feats)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    y = np.array([r["label"] for r in rows])
    hits = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        cents = np.array([x[rest & (y == lab)].mean(0) for lab in TASKS[task]])
        hits += TASKS[task][int(np.argmin(((cents - x[i]) ** 2).sum(1)))] == y[i]
    assert hits / len(y) >= floor


def test_clip_seeds_are_stable_and_distinct():
    a = clip_seed(0, "genre", "eval", "jazz", 3)
    assert a == clip_seed(0, "genre", "eval", "jazz", 3)
    others = {
        clip_seed(1, "genre", "eval", "jazz", 3),
        clip_seed(0, "genre", "train", "jazz", 3),
        clip_seed(0, "genre", "eval", "rock", 3),
        clip_seed(0, "genre", "eval", "jazz", 4),
    }
    assert a not in others and len(others) == 4


def test_fit_length_and_write_flac_keep_clips_within_1_to_4_seconds(tmp_path):
    rng = np.random.default_rng(0)
    assert len(fit_length(np.ones(SR // 2), rng)) == SR
    assert len(fit_length(np.ones(6 * SR), rng)) == 4 * SR
    with pytest.raises(ValueError, match="outside"):
        write_flac(tmp_path / "short.flac", np.zeros(SR // 2))


def test_griffin_lim_resynthesis_of_a_real_clip_keeps_length_and_envelope():
    real = next(r for r in MANIFEST if r["task"] == "spoof" and r["label"] == "real")
    x, _ = sf.read(CORPUS / real["path"], dtype="float64")
    y = griffin_lim(x, np.random.default_rng(0), n_fft=512, n_mels=64, n_iter=16)
    assert len(y) == len(x) and np.all(np.isfinite(y))
    # Frame energies follow the original's (same words, same timing), though samples differ.
    frames = len(x) // 400
    ex = np.sqrt((x[: frames * 400].reshape(frames, 400) ** 2).mean(1))
    ey = np.sqrt((y[: frames * 400].reshape(frames, 400) ** 2).mean(1))
    assert np.corrcoef(ex, ey)[0, 1] > 0.8
    assert not np.allclose(x, y, atol=1e-2)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(corpus_app, name="corpus")
    return app


def test_build_reports_missing_debian_packages_with_the_apt_command(tmp_path, monkeypatch):
    absent = debian.Package("sigwh-no-such-package", program="sigwh-no-such-program")
    monkeypatch.setitem(debian.REQUIRED, "genre", (absent,))
    result = CliRunner().invoke(
        _cli(), ["corpus", "build", "--out", str(tmp_path), "--task", "genre"]
    )
    assert result.exit_code == 1
    assert "apt-get install -y --no-install-recommends sigwh-no-such-package" in result.output
    assert not list(tmp_path.iterdir())


def test_build_refuses_an_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        build_corpus(tmp_path, tasks=["birdsong"])


@pytest.mark.skipif(bool(_missing_reason(list(TASKS))), reason=_missing_reason(list(TASKS)))
def test_same_seed_builds_identical_bytes_and_another_seed_differs(tmp_path):
    def build(out: Path, seed: int) -> dict[str, str]:
        rows = build_corpus(out, seed=seed, n_train_per_class=0, n_eval_per_class=1, jobs=2)
        return {r["path"]: r["sha256"] for r in rows}

    a, b, c = build(tmp_path / "a", 7), build(tmp_path / "b", 7), build(tmp_path / "c", 8)
    assert a == b
    assert len(a) == sum(len(labels) for labels in TASKS.values())
    assert sum(a[p] != c[p] for p in a) >= len(a) - 1
    # The eval manifest of the tmp build lists exactly its clips, and no train split exists.
    rows = read_manifest(tmp_path / "a" / "manifest.csv")
    assert {r["path"]: r["sha256"] for r in rows} == a
    assert not list((tmp_path / "a").glob("*/train"))


@pytest.mark.skipif(bool(_missing_reason(["genre"])), reason=_missing_reason(["genre"]))
def test_cli_builds_one_task(tmp_path):
    args = ["corpus", "build", "--out", str(tmp_path), "--task", "genre"]
    result = CliRunner().invoke(_cli(), [*args, "--train-per-class", "0", "--eval-per-class", "1"])
    assert result.exit_code == 0, result.output
    assert "genre/eval: 5 clips" in result.output
    assert len(list(tmp_path.glob("genre/eval/*/*.flac"))) == 5
    assert not (tmp_path / "genre" / "train").exists()
