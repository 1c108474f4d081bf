"""A model's rendering noise floor: measured by `sigwh ingest` before its first clip,
stored once, and the margin every one of its explanations is searched from.

On Earshot, the shipped detector that reads 16-bit integers (its answer moves by about
0.2 between renderings of a faint signal), and the real speech clips. The expected
moves are computed here with NumPy's float64 FFT, soundfile's 16-bit WAV round trip and
a direct call of the detector, never with the floor's own code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from sigwarehouse import catalog, clips, store
from sigwarehouse.analyses import silence
from sigwarehouse.cli import app

pytest.importorskip("earshot")  # the [vad] extra, which `make setup` installs

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("noise_floor")

REPO = Path(__file__).resolve().parents[1]
MODEL = "earshot"
N_CLIPS = 4  # the clips the floor is documented to be measured on
KEPT = (1, 4, 16, 64)  # the strongest bins kept alone, then the whole clip


def sigwh(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--warehouse", str(path), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, str]:
    """A speech warehouse with Earshot alone, which explained one clip of each label;
    and the dry run's plan printed before it."""
    path = tmp_path_factory.mktemp("floor") / "warehouse.duckdb"
    store.init(path)
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, "speech-eval", progress=False)
        con.execute("DELETE FROM models WHERE model <> ?", [MODEL])
    args = ["ingest", "--model", MODEL, "--per-label", "1", "--device", "cpu"]
    plan = sigwh(path, *args, "--dry-run")
    sigwh(path, *args)
    return path, plan


def _first_clips(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The task's first clips, one label after another, by plain Python."""
    by_label: dict[str, list[int]] = {}
    rows = con.execute("SELECT clip_id, label FROM clips ORDER BY clip_id").fetchall()
    for clip_id, label in rows:
        by_label.setdefault(label, []).append(clip_id)
    rounds = zip(*[sorted(ids) for ids in by_label.values()], strict=False)
    return [c for group in rounds for c in sorted(group)][:N_CLIPS]


def _wav16(x: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(x, -1, 1), 16000, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def _independent_moves(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sparse signal: the largest probability move between its float64 rebuild and
    its 16-bit WAV round trip, and whether the two disagree on the class."""
    from sigwarehouse.models.vad import earshot  # a direct call of the detector

    detector = earshot()
    spectrum = np.fft.rfft(wave.astype(np.float64))
    order = np.argsort(-np.abs(spectrum), kind="stable")
    moves, differs = [], []
    for k in (*KEPT, len(spectrum)):
        kept = np.zeros(len(spectrum))
        kept[order[:k]] = 1
        exact = np.fft.irfft(spectrum * kept, n=len(wave)).astype(np.float32)
        p = detector(np.stack([exact, _wav16(exact)]))
        moves.append(np.abs(p[1] - p[0]).max())
        differs.append(p[1].argmax() != p[0].argmax())
    return np.array(moves), np.array(differs)


def test_the_floor_is_measured_once_before_the_search_and_every_margin_is_at_least_it(
    ingested,
) -> None:
    path, plan = ingested
    assert f"rendering noise floor of {MODEL}: to measure first, on {N_CLIPS} clip(s)" in plan
    with store.opened(path, read_only=True) as con:
        floor = con.sql("SELECT * FROM model_noise_floors").pl().to_dicts()
        margins = [
            json.loads(m)["decision_margin"]
            for (m,) in con.execute("SELECT minimality FROM explanations").fetchall()
        ]
        expected_clips = _first_clips(con)
    assert len(floor) == 1 and floor[0]["model"] == MODEL
    row = floor[0]
    assert row["clip_ids"] == expected_clips
    assert row["n_signals"] == N_CLIPS * (len(KEPT) + 1)
    assert row["median_move"] <= row["noise_floor"] <= row["max_move"]
    assert len(margins) == 2 and all(m >= row["noise_floor"] for m in margins)
    # a second job on more clips searches from the stored floor: it is not measured again
    again = sigwh(path, "ingest", "--model", MODEL, "--per-label", "2", "--dry-run")
    assert f"rendering noise floor of {MODEL}: {row['noise_floor']:.3g} (stored)" in again


def test_the_stored_floor_bounds_the_moves_an_independent_rebuild_finds(ingested) -> None:
    """The stored figures are over four renderings; the two rebuilt here (NumPy float64,
    a 16-bit WAV) are among them, so each stored figure is at least the independent one."""
    path, _ = ingested
    with store.opened(path, read_only=True) as con:
        row = con.sql("SELECT * FROM model_noise_floors").pl().to_dicts()[0]
        files = dict(con.execute("SELECT clip_id, path FROM clips").fetchall())
    moves, differs = [], []
    for clip_id in row["clip_ids"]:
        wave, _rate = sf.read(REPO / "data" / "speech" / "eval" / files[clip_id], dtype="float32")
        m, d = _independent_moves(wave)
        moves.append(m)
        differs.append(d)
    moves, differs = np.concatenate(moves), np.concatenate(differs)
    assert row["max_move"] >= moves.max() - 1e-6
    assert row["noise_floor"] >= np.quantile(moves, 0.9, method="higher") - 1e-6
    assert row["top1_differs"] >= differs.mean() - 1e-9
    # Earshot is the detector the floor is for: a 16-bit round trip alone moves it by
    # hundredths on these signals (a float model moves by 1e-4 at most)
    assert moves.max() > 0.01


def test_the_silence_card_shows_the_floor_and_names_the_noisy_model(ingested) -> None:
    path, _ = ingested
    with store.opened(path, read_only=True) as con:
        section = silence.run(con)
        stored = con.execute("SELECT noise_floor, max_move FROM model_noise_floors").fetchall()
    card = section.tables[0].frame.filter(model=MODEL)
    assert card["noise_floor"].to_list() == pytest.approx([stored[0][0]])
    assert card["max_move"].to_list() == pytest.approx([stored[0][1]])
    assert any(note.startswith(f"{MODEL}: its answer moves by up to") for note in section.notes)
