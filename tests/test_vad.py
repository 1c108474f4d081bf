"""The speech task's pretrained voice-activity detectors (models/vad.py) and their set.

Each adapter is checked against its package's own API, called directly here on clips of
data/speech (silero-vad's streaming model call per 512-sample chunk, webrtcvad's
`Vad.is_speech` per 30 ms frame, earshot's `Detector.predict_f32` per 16 ms frame); the
catalog's reported accuracies are reproduced on the whole set; the set's manifest matches
its files and a rebuild gives the same samples; `sigwh ingest --model silero` explains two
clips with tests/light_params.py's parameters, every detector scoring every signal.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
import torch
from light_params import ARGS
from sharing import sigwh

from sigwarehouse import catalog, clips, store
from sigwarehouse.corpus.speechset import build_speech_set
from sigwarehouse.models.loader import load_classifier

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO / "data" / "speech"
LABELS = ["speech", "non-speech"]
DETECTORS = ("silero", "webrtc", "earshot")
# two speech and two non-speech clips, none a whole number of any detector's frames long
FEW = [
    "speech/emotion_calm_000.flac",
    "speech/spoof_real_002.flac",
    "non-speech/genre_jazz_000.flac",
    "non-speech/noise_001.flac",
]


def _read(rel: str) -> np.ndarray:
    x, sr = sf.read(SPEECH / "eval" / rel, dtype="float32")
    assert sr == 16000
    return x


def _adapter(name: str):
    return load_classifier("python", f"sigwarehouse.models.vad:{name}", LABELS, name=name)


def _adapter_speech(name: str, waves: list[np.ndarray]) -> np.ndarray:
    clf = _adapter(name)
    return np.array([float(clf(torch.from_numpy(w)[None])[0, 0]) for w in waves])


def test_few_clips_are_not_whole_frames() -> None:
    for rel in FEW:
        n = len(_read(rel))
        assert n % 512 and n % 480 and n % 256, rel


@pytest.fixture(scope="module")
def few() -> list[np.ndarray]:
    return [_read(rel) for rel in FEW]


def test_silero_equals_the_packages_streaming_model(few) -> None:
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # the package sets torch's threads to 1

    model = load_silero_vad()
    torch.set_num_threads(threads)
    expected = []
    for w in few:
        x = torch.from_numpy(np.pad(w, (0, -len(w) % 512)))
        model.reset_states()
        with torch.inference_mode():
            probs = [float(model(x[i : i + 512], 16000)) for i in range(0, len(x), 512)]
        expected.append(np.mean(probs))
    got = _adapter_speech("silero", few)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert got[:2].min() > 0.5 > got[2:].max()  # the speech clips are speech to it


def test_webrtc_equals_the_packages_frame_decisions(few) -> None:
    import webrtcvad

    expected = []
    for w in few:
        pcm = (np.clip(np.pad(w, (0, -len(w) % 480)), -1, 1) * 32767).round().astype("<i2")
        vad = webrtcvad.Vad(3)
        decisions = [
            vad.is_speech(pcm[i : i + 480].tobytes(), 16000) for i in range(0, len(pcm), 480)
        ]
        expected.append((sum(decisions) + 1) / (len(decisions) + 2))
    np.testing.assert_allclose(_adapter_speech("webrtc", few), expected, rtol=0, atol=1e-7)


def test_earshot_equals_the_packages_frame_scores(few) -> None:
    import earshot

    expected = []
    for w in few:
        x = np.clip(np.pad(w, (0, -len(w) % 256)), -1, 1)
        det = earshot.Detector()
        expected.append(np.mean([det.predict_f32(x[i : i + 256]) for i in range(0, len(x), 256)]))
    np.testing.assert_allclose(_adapter_speech("earshot", few), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", DETECTORS)
def test_batched_equals_one_by_one_and_rows_are_probabilities(name: str, few) -> None:
    n = min(len(w) for w in few)
    x = torch.from_numpy(np.stack([w[:n] for w in few]))
    clf = _adapter(name)
    batched = clf(x)
    alone = torch.cat([clf(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, alone, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.sum(-1), torch.ones(len(x)))
    assert batched.min() > 0  # smoothed or averaged: entropy is defined


def test_catalog_lists_the_detectors_with_licences_and_their_accuracy_holds() -> None:
    cat = catalog.load(REPO / "ingest")
    assert cat.tasks["speech"].labels == LABELS
    assert cat.datasets["speech-eval"].root == str(SPEECH / "eval")
    vads = {m.id: m for m in cat.models.values() if m.task == "speech"}
    assert sorted(vads) == sorted(DETECTORS)
    assert {m.id: m.license for m in vads.values()} == {
        "silero": "MIT",
        "webrtc": "MIT AND BSD-3-Clause",
        "earshot": "MIT OR Apache-2.0",
    }
    files = sorted((SPEECH / "eval").glob("*/*.flac"))
    waves = [torch.from_numpy(sf.read(f, dtype="float32")[0])[None] for f in files]
    truth = [LABELS.index(f.parent.name) for f in files]
    for name, entry in vads.items():
        assert (entry.kind, entry.ref) == ("python", f"sigwarehouse.models.vad:{name}")
        clf = _adapter(name)
        right = sum(int(clf(w).argmax()) == y for w, y in zip(waves, truth, strict=True))
        assert right / len(files) == pytest.approx(entry.accuracy, abs=1.01 / len(files)), name


def test_labels_are_read_without_torch_and_silero_leaves_torch_as_it_was() -> None:
    code = (
        "import sys; from sigwarehouse.models.labels import model_labels\n"
        "print([model_labels('python', f'sigwarehouse.models.vad:{n}') for n in"
        " ('silero', 'webrtc', 'earshot')])\n"
        "assert 'torch' not in sys.modules\n"
        "import numpy as np, torch; torch.set_num_threads(2)\n"
        "from sigwarehouse.models.vad import silero\n"
        "silero()(np.zeros((1, 1600), np.float32))\n"
        "assert torch.get_num_threads() == 2, torch.get_num_threads()\n"
        "assert 'silero_vad' not in sys.modules and 'torchaudio' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str([LABELS] * 3)


# --- the speech / non-speech set ---------------------------------------------------------


def _manifest(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_set_matches_its_manifest_and_its_corpus_sources() -> None:
    rows = _manifest(SPEECH / "manifest.csv")
    assert {r["path"] for r in rows} == {
        p.relative_to(SPEECH).as_posix() for p in (SPEECH / "eval").glob("*/*.flac")
    }
    assert sum(r["label"] == "speech" for r in rows) == 25 == len(rows) - 25
    for r in rows:
        data = (SPEECH / r["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"], r["path"]
        assert r["path"].startswith(f"eval/{r['label']}/")
        if r["source"].startswith("copy of corpus "):
            source = r["source"].removeprefix("copy of corpus ").split(" ")[0]
            assert (REPO / "data" / "corpus" / source).read_bytes() == data
            assert ("genre/" in source) == (r["label"] == "non-speech")
        else:
            assert r["label"] == "non-speech" and r["source"].split(":")[0] in (
                "tone", "noise", "silence"
            )  # fmt: skip
        x, sr = sf.read(SPEECH / r["path"])
        assert sr == 16000 and 1.0 <= len(x) / sr <= 4.0 and 0 < np.abs(x).max() <= 1


def _without_hash(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "sha256"}


def test_a_rebuild_gives_the_same_samples(tmp_path: Path) -> None:
    """Copies are the same bytes; rendered clips the same 16-bit samples (their FLAC bytes
    may differ with the libFLAC that soundfile bundles, which writes its own name)."""
    rows = build_speech_set(REPO / "data" / "corpus", tmp_path / "speech", seed=0)
    committed = _manifest(SPEECH / "manifest.csv")
    assert [_without_hash(r) for r in rows] == [_without_hash(r) for r in committed]
    for r in committed:
        new, old = tmp_path / "speech" / r["path"], SPEECH / r["path"]
        if r["source"].startswith("copy of corpus "):
            assert new.read_bytes() == old.read_bytes(), r["path"]
        else:
            a, b = (sf.read(f, dtype="int16")[0] for f in (new, old))
            np.testing.assert_array_equal(a, b, err_msg=r["path"])


# --- `sigwh ingest` on a detector ----------------------------------------------------------


def test_sigwh_ingest_explains_a_detector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGWH_CATALOG", str(REPO / "ingest"))
    path, _ = store.init(tmp_path / "warehouse.duckdb")
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, "speech-eval", progress=False, per_label=1)
    args = ["--model", "silero", "--per-label", "1", "--device", "cpu", *ARGS]
    result = sigwh(path, "ingest", *args)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(path), read_only=True)
    try:
        runs = con.execute("SELECT job, model, status, n_errors FROM runs").fetchall()
        explained = con.execute(
            "SELECT c.label, e.orig_class FROM explanations e JOIN clips c USING (clip_id)"
            " ORDER BY 1"
        ).fetchall()
        targets = con.execute(
            "SELECT DISTINCT target_model FROM signal_probs ORDER BY 1"
        ).fetchall()
        probes = con.execute("SELECT probe FROM model_probes ORDER BY 1").fetchall()
    finally:
        con.close()
    assert runs == [("ingest", "silero", "done", 0)]
    # silero calls the two clips what they are; every detector scored every signal
    assert explained == [("non-speech", 1), ("speech", 0)]
    assert targets == [(m,) for m in sorted(DETECTORS)]
    assert probes == [("noise-60dbfs",), ("silence",)]
    rerun = sigwh(path, "ingest", *args)
    assert rerun.exit_code == 0 and "nothing to do" in rerun.output.lower(), rerun.output
    _the_report_section_matches_direct_calls(path)


def _the_report_section_matches_direct_calls(path: Path) -> None:
    """The report's pretrained-models section on that warehouse: licences as in the
    catalog, silero's silence class from a direct call on zeros, and each α cell between
    detectors recomputed from the stored audio and mask with plain FFTs and a direct call
    of the target detector."""
    from reference import fft_signal

    from sigwarehouse.analyses import pretrained

    with store.opened(path, read_only=True) as con:
        section = pretrained.run(con)
        stored = con.execute(
            "SELECT c.path, e.n_bins, e.sufficient_mask, e.orig_class FROM explanations e "
            "JOIN clips c USING (clip_id) WHERE e.sufficient_mask IS NOT NULL ORDER BY clip_id"
        ).fetchall()
        n_probe = con.execute(
            "SELECT n_samples FROM model_probes WHERE probe = 'silence'"
        ).fetchall()[0][0]
    assert section.missing is None
    for chart in section.charts:
        chart.chart.to_dict()  # validates against the Vega-Lite schema
    table = section.tables[0].frame.filter(task="speech")  # the other tasks' models too
    licences = {m.id: m.license for m in catalog.load(REPO / "ingest").models.values()}
    assert dict(zip(table["model"], table["license"], strict=True)) == {
        m: licences[m] for m in DETECTORS
    }
    silence = _adapter("silero")(torch.zeros(1, n_probe))[0].argmax().item()
    assert table.filter(model="silero")["silence_class"].to_list() == [LABELS[silence]]
    assert stored, "silero found no sufficient mask on either clip"
    for target in ("webrtc", "earshot"):
        clf = _adapter(target)
        kept = []
        for rel, n_bins, packed, cls in stored:
            wave = torch.from_numpy(_read(rel))
            mask = np.unpackbits(np.frombuffer(packed, np.uint8), count=n_bins).astype(float)
            probs = clf(fft_signal(wave, mask).float()[None])[0]
            kept.append(int(probs.argmax()) == cls)
        note = next(n for n in section.notes if "sufficient signals" in n)
        pair = f"silero → {target} ({np.mean(kept):.2f}, n = {len(kept)})"
        # the note names the highest and lowest pair; with two targets, both are named
        assert pair in note, (pair, note)
