"""Clips: the policy on generated good and bad files, idempotent re-adds, relocation, blobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from sigwarehouse import audio, catalog, clips
from sigwarehouse.cli import main_options
from sigwarehouse.cli.dataset import dataset_app

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

SR = 16000
LABELS = ["neutral", "calm", "happy", "sad", "angry"]


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def make_corpus(root: Path) -> None:
    """Audio files, one per case of the clip policy (rebuilt in every test's tmp_path)."""
    for label in [*LABELS, "bored"]:
        (root / label).mkdir(parents=True)
    sf.write(root / "neutral/plain.wav", tone(1.0, SR), SR, subtype="PCM_16")
    stereo = np.stack([tone(1.0, 44100, amp=0.6), tone(1.0, 44100, amp=0.2)], axis=1)
    sf.write(root / "calm/stereo44k.wav", stereo, 44100, subtype="PCM_16")
    sf.write(root / "happy/eightbit.wav", tone(1.0, 8000, amp=0.5), 8000, subtype="PCM_U8")
    sf.write(root / "happy/streamed.wav", tone(1.0, SR), SR, subtype="PCM_16")
    data = bytearray((root / "happy/streamed.wav").read_bytes())
    at = data.index(b"data") + 4  # a streaming writer's "length unknown" sizes
    data[at : at + 4] = data[4:8] = b"\xff\xff\xff\xff"
    (root / "happy/streamed.wav").write_bytes(data)
    sf.write(root / "sad/vorbis.ogg", tone(1.0, SR), SR, format="OGG", subtype="VORBIS")
    bad = tone(1.0, SR).astype(np.float32)
    bad[100] = np.nan
    sf.write(root / "sad/nan.wav", bad, SR, subtype="FLOAT")
    sf.write(root / "angry/full.wav", tone(1.0, SR), SR, subtype="PCM_16")
    data = (root / "angry/full.wav").read_bytes()
    (root / "angry/full.wav").unlink()
    (root / "angry/cut.wav").write_bytes(data[: len(data) // 2])  # header still says 1 s
    sf.write(root / "angry/full.flac", tone(1.0, SR), SR, subtype="PCM_16")
    data = (root / "angry/full.flac").read_bytes()
    (root / "angry/full.flac").unlink()
    (root / "angry/cut.flac").write_bytes(data[: len(data) // 2])
    sf.write(root / "angry/empty.wav", np.zeros(0), SR, subtype="PCM_16")
    (root / "angry/zero-bytes.wav").write_bytes(b"")
    sf.write(root / "neutral/short.wav", tone(0.2, SR), SR, subtype="PCM_16")
    sf.write(root / "bored/yawn.wav", tone(1.0, SR), SR, subtype="PCM_16")
    sf.write(root / "loose.wav", tone(1.0, SR), SR, subtype="PCM_16")
    (root / "neutral/notes.txt").write_text("not audio, not scanned")


ACCEPTED = {
    # path: (label, native rate, channels, subtype, registered samples)
    "calm/stereo44k.wav": ("calm", 44100, 2, "PCM_16", SR),
    "happy/eightbit.wav": ("happy", 8000, 1, "PCM_U8", SR),
    "happy/streamed.wav": ("happy", SR, 1, "PCM_16", SR),
    "neutral/plain.wav": ("neutral", SR, 1, "PCM_16", SR),
    "sad/vorbis.ogg": ("sad", SR, 1, "VORBIS", SR),
}
REJECTED = {
    "angry/cut.flac": "truncated",
    "angry/cut.wav": "truncated",
    "angry/empty.wav": "empty",
    "angry/zero-bytes.wav": "unreadable",
    "bored/yawn.wav": "unknown-label",
    "loose.wav": "no-label",
    "neutral/short.wav": "too-short",
    "sad/nan.wav": "non-finite",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus" / "emotion"
    make_corpus(root)
    return root


@pytest.fixture
def synced(wh_path: Path, corpus: Path, tmp_path: Path) -> Path:
    """The warehouse with a catalog whose dataset 'emo' points at the generated corpus."""
    cat = tmp_path / "ingest"
    (cat / "datasets").mkdir(parents=True)
    (cat / "tasks.toml").write_text(
        f"[emotion]\nlabels = {LABELS!r}\nmin_duration_s = 0.5\n".replace("'", '"')
    )
    (cat / "datasets" / "emo.toml").write_text(f'task = "emotion"\nroot = "{corpus}"\n')
    with duckdb.connect(str(wh_path)) as con:
        catalog.sync(con, cat)
    return wh_path


@pytest.fixture
def sigwh(synced: Path):
    """`sigwh --warehouse <synced> dataset ...`, the global options taken from the real CLI."""
    runner = CliRunner()
    app = typer.Typer()
    app.callback()(main_options)
    app.add_typer(dataset_app, name="dataset")

    def invoke(*args: str, expect: int = 0):
        result = runner.invoke(app, ["--warehouse", str(synced), *args])
        assert result.exit_code == expect, (result.output, result.exception)
        return result

    return invoke


def query(wh: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def loaded(wh: Path, ids: list[int]) -> list[np.ndarray]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return audio.load_clips(con, ids)


def ids_by_path(wh: Path) -> dict[str, int]:
    return dict(query(wh, "SELECT path, clip_id FROM clips ORDER BY path"))


def test_policy_registers_good_files_and_rejects_bad_ones(sigwh, synced: Path) -> None:
    out = sigwh("dataset", "add", "emo", "--no-progress").output
    assert out.splitlines()[0] == (
        "emo: 13 files, 5 registered (5 new, 0 unchanged), 8 rejected (1 empty, 1 no-label, "
        "1 non-finite, 1 too-short, 2 truncated, 1 unknown-label, 1 unreadable)"
    )
    registered = query(
        synced,
        "SELECT path, label, native_sample_rate, native_channels, native_subtype, n_samples "
        "FROM clips ORDER BY path",
    )
    assert {r[0]: r[1:] for r in registered} == ACCEPTED
    assert query(synced, "SELECT DISTINCT round(duration_s, 6) FROM clips") == [(1.0,)]
    reasons = dict(query(synced, "SELECT path, reason FROM rejected_clips ORDER BY path"))
    assert {p: r.split(":")[0] for p, r in reasons.items()} == REJECTED
    assert "0.200 s < 0.5 s" in reasons["neutral/short.wav"]
    assert "'bored' is not a label of task 'emotion'" in reasons["bored/yawn.wav"]
    listed = sigwh("dataset", "rejected", "emo").output.splitlines()
    assert [line.split("\t")[0] for line in listed] == sorted(REJECTED)

    ids = ids_by_path(synced)
    plain, stereo, eightbit = loaded(
        synced, [ids["neutral/plain.wav"], ids["calm/stereo44k.wav"], ids["happy/eightbit.wav"]]
    )
    for x in (plain, stereo, eightbit):
        assert x.dtype == np.float32 and x.shape == (SR,) and np.abs(x).max() <= 1.0
    mid = slice(1000, -1000)  # away from the resampling filter's edges
    np.testing.assert_allclose(plain, tone(1.0, SR), atol=1 / 32768)
    # stereo averaged to mono (0.6 and 0.2 -> 0.4), then 44.1 -> 16 kHz
    np.testing.assert_allclose(stereo[mid], tone(1.0, SR, amp=0.4)[mid], atol=2e-3)
    # 8-bit integers scaled to [-1, 1] (one step is 1/128), then 8 -> 16 kHz
    np.testing.assert_allclose(eightbit[mid], tone(1.0, SR)[mid], atol=2 / 128)


def test_readd_registers_nothing_twice(sigwh, synced: Path) -> None:
    sigwh("dataset", "add", "emo", "--no-progress")
    before = query(synced, "SELECT * FROM clips ORDER BY clip_id")
    out = sigwh("dataset", "add", "--all", "--no-progress").output.splitlines()
    assert out[0].startswith("emo: 13 files, 5 registered (0 new, 5 unchanged), 8 rejected (")
    assert out[0].endswith("unreadable)")  # nothing changed, nothing missing
    assert query(synced, "SELECT * FROM clips ORDER BY clip_id") == before
    assert query(synced, "SELECT count(*) FROM rejected_clips") == [(8,)]


def test_changed_file_is_reported_and_reregistered(sigwh, synced: Path, corpus: Path) -> None:
    sigwh("dataset", "add", "emo", "--no-progress")
    old = ids_by_path(synced)
    sf.write(corpus / "neutral/plain.wav", tone(1.0, SR, freq=880), SR, subtype="PCM_16")
    with pytest.raises(audio.ClipLoadError, match="changed since it was registered"):
        loaded(synced, [old["neutral/plain.wav"]])
    (corpus / "sad/vorbis.ogg").unlink()

    out = sigwh("dataset", "add", "emo", "--no-progress").output
    assert "4 registered (1 new, 3 unchanged), 8 rejected" in out
    assert "1 changed, 1 missing" in out
    assert "re-registered with new clip ids, or rejected): neutral/plain.wav" in out
    assert "missing on disk (rows kept): sad/vorbis.ogg" in out
    new = ids_by_path(synced)
    assert new["neutral/plain.wav"] not in old.values()  # results for the old id stay apart
    assert new["sad/vorbis.ogg"] == old["sad/vorbis.ogg"]
    (x,) = loaded(synced, [new["neutral/plain.wav"]])
    np.testing.assert_allclose(x, tone(1.0, SR, freq=880), atol=1 / 32768)


def test_labels_from_csv_and_regex(wh_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    for name in ("real_001.wav", "fake_002.wav", "other_003.wav"):
        sf.write(root / name, tone(1.0, SR), SR, subtype="PCM_16")
    (root / "labels.csv").write_text("path,label\nreal_001.wav,fake\nfake_002.wav,real\n")
    cat = tmp_path / "ingest"
    (cat / "datasets").mkdir(parents=True)
    (cat / "tasks.toml").write_text('[spoof]\nlabels = ["real", "fake"]\n')
    (cat / "datasets" / "by-csv.toml").write_text(
        f'task = "spoof"\nroot = "{root}"\nlabels_from = "csv"\ncsv = "labels.csv"\n'
    )
    (cat / "datasets" / "by-name.toml").write_text(
        f'task = "spoof"\nroot = "{root}"\nlabels_from = "regex"\nregex = "^(?P<label>[a-z]+)_"\n'
    )
    with duckdb.connect(str(wh_path)) as con:
        catalog.sync(con, cat)
        clips.add_dataset(con, "by-csv", progress=False)
        clips.add_dataset(con, "by-name", progress=False)
        got = con.execute("SELECT dataset, path, label FROM clips ORDER BY 1, 2").fetchall()
        why = con.execute("SELECT dataset, path, reason FROM rejected_clips ORDER BY 1").fetchall()
    assert got == [
        ("by-csv", "fake_002.wav", "real"),
        ("by-csv", "real_001.wav", "fake"),
        ("by-name", "fake_002.wav", "fake"),
        ("by-name", "real_001.wav", "real"),
    ]
    assert why == [
        ("by-csv", "other_003.wav", "no-label: not listed in labels.csv"),
        (
            "by-name",
            "other_003.wav",
            "unknown-label: 'other' is not a label of task 'spoof' (real, fake)",
        ),
    ]


def test_relocate_checks_files_then_moves_root(
    sigwh, synced: Path, corpus: Path, tmp_path: Path
) -> None:
    sigwh("dataset", "add", "emo", "--no-progress")
    ids = list(ids_by_path(synced).values())
    expected = loaded(synced, ids)
    moved = tmp_path / "elsewhere" / "emotion"
    shutil.copytree(corpus, moved)
    shutil.rmtree(corpus)
    with pytest.raises(audio.ClipLoadError, match="is missing.*sigwh dataset relocate emo"):
        loaded(synced, ids)

    (tmp_path / "empty").mkdir()
    out = sigwh("dataset", "relocate", "emo", str(tmp_path / "empty"), expect=1).output
    assert "5 of 5 clips of 'emo' are not under" in out and "nothing changed" in out
    assert query(synced, "SELECT root FROM datasets") == [(str(corpus),)]

    out = sigwh("dataset", "relocate", "emo", str(moved)).output
    assert out.strip() == f"emo: root {corpus} -> {moved} (5 clips found)"
    for x, y in zip(loaded(synced, ids), expected, strict=True):
        np.testing.assert_array_equal(x, y)
    # A rescan at the new root finds the same files: nothing new.
    assert "(0 new, 5 unchanged)" in sigwh("dataset", "add", "emo", "--no-progress").output


def test_store_audio_makes_the_warehouse_self_contained(
    sigwh, synced: Path, corpus: Path, tmp_path: Path
) -> None:
    sigwh("dataset", "add", "emo", "--no-progress")
    ids = list(ids_by_path(synced).values())
    from_files = loaded(synced, ids)
    out = sigwh("dataset", "add", "emo", "--store-audio", "--no-progress").output
    assert "(0 new, 5 unchanged)" in out and "5 audio blobs stored" in out
    shutil.rmtree(corpus)
    for x, y in zip(loaded(synced, ids), from_files, strict=True):
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, y, atol=2.0**-23)  # one 24-bit step
    # with every clip stored, any folder will do as the root
    (tmp_path / "anywhere").mkdir()
    out = sigwh("dataset", "relocate", "emo", str(tmp_path / "anywhere")).output
    assert "5 absent but stored in the warehouse" in out
    assert "with_audio" in sigwh("dataset", "list").output


def test_flac_blob_round_trip() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 4000).astype(np.float32)
    y, sr = audio.decode_flac(audio.encode_flac(x, 8000))
    assert sr == 8000 and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=2.0**-23)


def test_a_failing_batch_leaves_whole_batches_and_a_rerun_completes(
    synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_decode = audio.decode
    calls = []

    def decode_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk fell off")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(audio, "decode", decode_then_fail)
    with duckdb.connect(str(synced)) as con:
        # files in order: angry/cut.flac, angry/cut.wav | angry/empty.wav ...: batch 2 fails
        with pytest.raises(RuntimeError, match="disk fell off"):
            clips.add_dataset(con, "emo", progress=False, batch_size=2)
        assert con.execute("SELECT path FROM rejected_clips ORDER BY path").fetchall() == [
            ("angry/cut.flac",),
            ("angry/cut.wav",),
        ]
        monkeypatch.setattr(audio, "decode", real_decode)
        summary = clips.add_dataset(con, "emo", progress=False, batch_size=2)
        assert (summary.added, sum(summary.rejected.values())) == (5, 8)
        assert con.execute("SELECT count(*) FROM rejected_clips").fetchall() == [(8,)]


def test_task_labels_cannot_change_under_registered_clips(synced: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(synced)) as con:
        clips.add_dataset(con, "emo", progress=False)
        tasks = tmp_path / "ingest" / "tasks.toml"
        tasks.write_text(tasks.read_text().replace('"neutral", "calm"', '"calm", "neutral"'))
        with pytest.raises(catalog.CatalogError, match="5 clips are registered"):
            catalog.sync(con, tmp_path / "ingest")


def test_unknown_dataset_and_bad_arguments(sigwh) -> None:
    out = sigwh("dataset", "add", "nope", expect=1).output
    assert "no dataset 'nope' in the warehouse (known: ['emo'])" in out
    assert "NAME or --all" in sigwh("dataset", "add", expect=1).output


def test_add_all_reports_a_missing_root_and_adds_the_rest(
    sigwh, synced: Path, tmp_path: Path
) -> None:
    cat = tmp_path / "ingest"
    (cat / "datasets" / "gone.toml").write_text(f'task = "emotion"\nroot = "{tmp_path / "gone"}"\n')
    with duckdb.connect(str(synced)) as con:
        catalog.sync(con, cat)
    out = sigwh("dataset", "add", "--all", "--no-progress", expect=1).output
    assert "emo: 13 files, 5 registered (5 new, 0 unchanged)" in out
    assert f"error: dataset 'gone': root {tmp_path / 'gone'} is not a folder" in out
