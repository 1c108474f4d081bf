"""The Python API (sigwarehouse.api) on the small hand-made warehouse: its α and β
matrices against α computed here from the raw signal_probs rows, an explanation's masks
against the masks inserted, its signals against irfft(mask · rfft(clip)) in plain NumPy,
the audio a notebook plays, and that it holds no lock and loads nothing at import.
(docs/notebook.ipynb runs on the demo's warehouse in tests/test_demo.py.)
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from collections import defaultdict

import duckdb
import numpy as np
import pytest
import soundfile as sf
from small_warehouse import NO_MASK, PARAMS_HASH, RATE

import sigwarehouse
from sigwarehouse.errors import SigwhError


@pytest.fixture
def wh(small_filled):
    return sigwarehouse.open(small_filled[0])


def hand_alpha(filled, task: str, kind: str) -> dict[tuple[str, str], float]:
    """(source, target) -> α from the inserted signal rows of `task`."""
    cells = defaultdict(list)
    for t, source, _clip, k, target, source_class, _probs, top1 in filled.signals:
        if t == task and k == kind:
            cells[(source, target)].append(top1 == source_class)
    return {key: sum(v) / len(v) for key, v in cells.items()}


def test_alpha_and_beta_matrices_are_the_shares_of_the_signal_rows(wh, small_filled) -> None:
    filled = small_filled[1]
    for task in ("t", "u"):
        for kind in ("sufficient", "complete"):
            expected = hand_alpha(filled, task, kind)
            matrix = wh.alpha(task=task, kind=kind)
            models = sorted({s for s, _ in expected})
            assert matrix.columns == ["source_model", *models, "avg"]
            assert matrix["source_model"].to_list() == models
            for row in matrix.iter_rows(named=True):
                a = row["source_model"]
                for b in models:
                    assert row[b] == pytest.approx(expected[(a, b)]), (task, kind, a, b)
                others = [expected[(a, b)] for b in models if b != a]
                assert row["avg"] == pytest.approx(sum(others) / len(others))
            assert wh.beta(1.0, task=task, kind=kind).equals(matrix)  # β(1) = α
            assert wh.alpha(task=task, kind=kind, params_hash=PARAMS_HASH).equals(matrix)
    with pytest.raises(SigwhError, match="choose a task with task=…: this warehouse has t, u"):
        wh.alpha()
    with pytest.raises(SigwhError, match="task 'x' has no cells here"):
        wh.alpha(task="x")
    summary = wh.summary()
    assert set(summary["model"]) == {"m1", "m2", "m3", "m4", "s1", "s2", "s3"}


def test_an_explanation_has_the_stored_masks_and_their_signals(wh, small_filled) -> None:
    filled = small_filled[1]
    e = wh.explanation("m2", 1)
    suff, comp = filled.masks[("m2", 1)]
    assert e.sufficient_mask.dtype == bool and np.array_equal(e.sufficient_mask, suff)
    assert np.array_equal(e.complete_mask, comp)
    assert e.params_hash == PARAMS_HASH and e.sample_rate == RATE
    assert np.allclose(e.frequencies[:3], [0.0, 2.0, 4.0])  # 16 kHz over 8000 samples
    clip = filled.audio[1].astype(np.float64)
    spectrum = np.fft.rfft(clip)
    for kind, mask in (("sufficient", suff), ("complete", comp), ("inverse", ~comp)):
        signal = e.signal(kind)
        assert signal.rate == RATE and len(signal) == len(clip)
        expected = np.fft.irfft(spectrum * mask, n=len(clip))
        np.testing.assert_allclose(np.asarray(signal), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(e.signal("original")), clip, atol=1e-4)  # FLAC
    # the bands: one row per run of kept bins, at 2 Hz a bin
    bands = e.bands("complete")
    starts = np.flatnonzero(np.diff(np.concatenate(([0], comp.astype(int)))) == 1)
    assert bands["first_bin"].to_list() == starts.tolist()
    assert bands["lo_hz"].to_list() == pytest.approx((starts * 2.0).tolist())
    assert sum(bands["bins"]) == int(comp.sum())
    with pytest.raises(SigwhError, match=f"{NO_MASK[0]} has no sufficient mask for clip"):
        wh.explanation(*NO_MASK).signal("sufficient")
    with pytest.raises(SigwhError, match="no explanation of clip 999 by m2"):
        wh.explanation("m2", 999)


def test_a_signal_plays_in_a_notebook(wh) -> None:
    signal = wh.explanation("m1", 1).signal("complete")
    page = signal._repr_html_()
    data = re.search(r'<audio controls src="data:audio/wav;base64,([^"]+)"', page)[1]
    samples, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32")
    assert rate == RATE and len(samples) == len(signal)
    np.testing.assert_allclose(samples, np.clip(signal.samples, -1, 1), atol=1 / 32767 + 1e-6)


def test_the_api_holds_no_lock_and_loads_on_first_use(wh, small_filled) -> None:
    wh.explanation("m1", 1)
    con = duckdb.connect(str(small_filled[0]))  # a writer opens it while `wh` lives
    con.close()
    code = (
        "import sys, sigwarehouse; assert 'polars' not in sys.modules"
        " and 'duckdb' not in sys.modules; sigwarehouse.Warehouse; assert 'polars' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
