"""Probes: `sigwh ingest --model M` stores what M says about silence and faint noise.

On the shipped spoof clips and two real zoo models. The expected answers come from a
direct model call on numpy-made probes, not from the probe code.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sigwarehouse import catalog, clips, store
from sigwarehouse.cli import app
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.jobs import ingest
from sigwarehouse.models.loader import load_classifier

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("probes")

REPO = Path(__file__).resolve().parents[1]
TASK, DATASET = "spoof", "spoof-eval"
MODELS = ["sp1", "sp2"]


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> tuple[Path, str]:
    """A spoof warehouse with two models whose probes `sigwh ingest` stored while
    explaining no clip (--per-label 0); and the first command's output."""
    path = tmp_path_factory.mktemp("probes") / "warehouse.duckdb"
    store.init(path)
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        clips.add_dataset(con, DATASET, progress=False)
        con.execute("DELETE FROM models WHERE model NOT IN (SELECT unnest(?::VARCHAR[]))", [MODELS])
    outputs = [_sigwh(path, "ingest", "--model", m, "--per-label", "0") for m in MODELS]
    return path, outputs[0]


def _sigwh(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--warehouse", str(path), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _median_length(con: duckdb.DuckDBPyConnection) -> int:
    """The lower median of the spoof clips' lengths, by numpy."""
    lengths = np.sort([n for (n,) in con.execute("SELECT n_samples FROM clips").fetchall()])
    return int(lengths[(len(lengths) - 1) // 2])


def _noise(n: int) -> np.ndarray:
    """White noise at -60 dBFS: RMS 10^(-60/20) of full scale 1, default_rng(0)."""
    g = np.random.default_rng(0).standard_normal(n)
    return g * (10 ** (-60 / 20) / np.sqrt(np.mean(g**2)))


def test_probes_are_stored_when_no_clip_is_left_to_explain(probed) -> None:
    path, output = probed
    con = duckdb.connect(str(path), read_only=True)
    n = _median_length(con)
    runs = con.execute("SELECT job, model, status, clips_done FROM runs ORDER BY model").fetchall()
    explained = con.execute("SELECT count(*) FROM explanations").fetchone()[0]
    con.close()
    assert "nothing to do" not in output
    assert f"probes of sp1 (silence, noise-60dbfs) to store: at {n} samples" in output
    assert runs == [("ingest", m, "done", 0) for m in MODELS]
    assert explained == 0


def test_stored_probabilities_equal_a_direct_model_call(probed) -> None:
    path, _ = probed
    con = duckdb.connect(str(path), read_only=True)
    n = _median_length(con)
    labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
    refs = {
        m: (kind, ref)
        for m, kind, ref in con.execute("SELECT model, kind, ref FROM models").fetchall()
    }
    stored = con.execute(
        "SELECT model, probe, n_samples, probs, top1, entropy_bits FROM model_probes"
        " ORDER BY model, probe"
    ).fetchall()
    con.close()
    noise = _noise(n)
    assert 20 * math.log10(np.sqrt(np.mean(noise**2))) == pytest.approx(-60.0)
    waves = {"silence": np.zeros(n), "noise-60dbfs": noise}
    assert [(m, p) for m, p, *_ in stored] == [(m, p) for m in MODELS for p in sorted(waves)]
    for model, probe, n_samples, probs, top1, bits in stored:
        clf = load_classifier(*refs[model], labels)
        x = torch.from_numpy(waves[probe].astype(np.float32))[None]
        want = clf(x)[0].double().numpy()
        assert n_samples == n
        assert probs == pytest.approx(want, abs=1e-6)
        assert top1 == int(want.argmax())
        assert bits == pytest.approx(-(want * np.log2(want)).sum(), abs=1e-5)


def test_a_second_run_has_nothing_to_do_until_a_probe_goes_missing(probed) -> None:
    path, _ = probed
    assert "nothing to do: everything is stored" in _sigwh(
        path, "ingest", "--model", "sp1", "--per-label", "0"
    )
    params = FreqrexParams()
    with store.opened(path, read_only=True) as con:
        plan = ingest.plan_ingest(con, "sp2", params, per_label=0)
        n = _median_length(con)
    assert plan.is_empty() and "to store: none (stored)" in plan.describe()
    with store.opened(path) as con:  # one of two probes lost: the plan wants it back
        con.execute("DELETE FROM model_probes WHERE model = 'sp2' AND probe = 'silence'")
        plan = ingest.plan_ingest(con, "sp2", params, per_label=0)
    assert not plan.is_empty() and plan.probe_samples == n
    ingest.run_ingest(path, plan)
    with store.opened(path, read_only=True) as con:
        assert ingest.plan_ingest(con, "sp2", params, per_label=0).is_empty()
        assert con.execute("SELECT count(*) FROM model_probes").fetchone() == (4,)
