"""`sigwh demo` on a small catalog (tests/demo_catalog.py): the shipped spoof clips (three
of each label; the demo explains a sample, here one of each) with one zoo model, and the
speech task's clips with two of its pretrained detectors (WebRTC and Earshot, the fast
ones), with the light freqrex parameters of test_ingest (the demo's own, the "quick"
preset, take a minute per model on two cores).

Properties: the demo shows ingest's progress bar; `sigwh ingest` with the parameters the
demo used finds nothing to do (the warehouse registers the demo's sample only; `sigwh
dataset add` registers the rest); the demo's set is the warehouse's current one, which
plain `sigwh ingest` continues and `--preset` leaves (its results stay apart); a second
demo stores nothing (no runs rows, every table as it was) and says so without "nan";
label transfer stores every clip it checked, so a rerun has none left to check; the
report shows the speech task's detectors with α between them, and says at its top that
two clips a dataset make its figures illustrative; the README's quoted queries print, on
this warehouse, the outputs the README shows.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import demo_catalog
import duckdb
import numpy as np
import pytest
import soundfile as sf
from demo_catalog import DETECTORS, MODEL
from light_params import ARGS as SAME
from light_params import PARAMS
from typer.testing import CliRunner

from sigwarehouse import store
from sigwarehouse.cli import app
from sigwarehouse.freqrex.params import PRESETS, FreqrexParams
from sigwarehouse.jobs import label_transfer

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("demo")

REPO = Path(__file__).resolve().parents[1]


def _tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table (a second demo must leave each as it was)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [n for (n,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {n: con.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("demo")
    path, lines, err = demo_catalog.build(root)
    return root, path, lines, err


def _sigwh(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--warehouse", str(path), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_demo_shows_the_progress_of_each_ingest(demo) -> None:
    _root, _path, lines, err = demo
    assert f"{MODEL}: explaining 2 clip(s)" in lines
    assert f"ingest {MODEL}: 100%" in err and "2/2" in err and "queries_s=" in err


def test_models_explained_side_by_side_store_the_rows_of_one_after_another(demo, tmp_path) -> None:
    """Two workers (each model in a process of its own, into a shard merged after) store
    the same explanations and the same signal probabilities as the fixture's demo, which
    explained the models one after another, and say which ran in a worker."""
    _root, path, _lines, _err = demo
    demo_catalog.catalog(tmp_path)
    lines, _ = demo_catalog.demo(tmp_path, workers=2)
    assert f"{MODEL}: explaining 2 clip(s) in a worker" in lines
    assert any(line.startswith("shard ") and "merged" in line for line in lines)

    def rows(warehouse: Path) -> tuple[list, list]:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            expl = con.execute(
                "SELECT model, clip_id, params_hash, orig_class, sufficient_mask, complete_mask,"
                " complete_reason, queries FROM explanations ORDER BY ALL"
            ).fetchall()
            probs = con.execute(
                "SELECT source_model, clip_id, kind, target_model, top1, probs FROM signal_probs"
                " ORDER BY ALL"
            ).fetchall()
        finally:
            con.close()
        return expl, probs

    (expl_one, probs_one), (expl_two, probs_two) = rows(path), rows(tmp_path / "warehouse.duckdb")
    assert expl_one and expl_two == expl_one
    assert [r[:5] for r in probs_two] == [r[:5] for r in probs_one]
    np.testing.assert_allclose(
        [r[5] for r in probs_two], [r[5] for r in probs_one], rtol=0, atol=1e-6
    )


def test_ingest_with_the_demo_parameters_has_nothing_to_do(demo) -> None:
    _root, path, _lines, _err = demo
    out = _sigwh(path, "ingest", "--model", MODEL, "--per-label", "1", *SAME)
    assert "nothing to do: everything is stored" in out
    assert "note:" not in out
    # the warehouse holds the demo's sample only: plain ingest finds it all done too
    out = _sigwh(path, "ingest", "--model", MODEL, *SAME)
    assert "nothing to do: everything is stored" in out


def test_the_rest_of_the_dataset_is_one_command_away(demo, tmp_path) -> None:
    _root, path, lines, _err = demo
    assert "spoof-eval: 6 files, 2 registered (2 new, 0 unchanged) of a sample of 1 per label" in (
        " ".join(lines))  # fmt: skip
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    out = _sigwh(copy, "dataset", "add", "spoof-eval", "--no-progress")
    assert "6 files, 6 registered (4 new, 2 unchanged)" in out
    out = _sigwh(copy, "ingest", "--model", MODEL, *SAME, "--dry-run")
    assert f"parameters {PARAMS.hash()}:" in out and "clips to explain: 4" in out
    assert "note:" not in out


def test_the_warehouse_remembers_its_parameter_set(demo) -> None:
    """The set the demo explained with is the warehouse's current set: `sigwh info` shows
    it and plain `sigwh ingest` continues it (nothing to do). `--preset` starts from a
    preset, and says before any work that its results stay apart; single options without
    `--preset` replace values of the current set."""
    _root, path, _lines, _err = demo
    info = _sigwh(path, "info")
    assert f"current parameter set: {PARAMS.hash()} (custom: " in info
    con = duckdb.connect(str(path), read_only=True)
    (n,) = con.execute("SELECT count(*) FROM explanations").fetchone()
    con.close()
    assert "iterations=1" in info and f"; {n} explanations)" in info  # every task's
    out = _sigwh(path, "ingest", "--model", MODEL, "--dry-run")
    assert f"parameters {PARAMS.hash()}:" in out
    assert "nothing to do: everything is stored" in out and "note:" not in out
    out = _sigwh(path, "ingest", "--model", MODEL, "--preset", "default", "--dry-run")
    assert f"parameters {FreqrexParams().hash()}:" in out and "clips to explain: 2" in out
    assert f"current parameter set is {PARAMS.hash()} (2 explanations of task spoof)" in out
    assert "results stay apart" in out
    assert f"alpha_transferability_for('{FreqrexParams().hash()}')" in out
    out = _sigwh(path, "ingest", "--model", MODEL, "--preset", "quick", "--dry-run")
    assert f"parameters {PRESETS['quick'].hash()}:" in out and "stay apart" in out
    out = _sigwh(
        path, "ingest", "--model", MODEL, "--preset", "quick", "--iterations", "3",
        "--param", "certify_rounds=5", "--dry-run",
    )  # fmt: skip
    mixed = FreqrexParams(iterations=3, certify_rounds=5, per_bin_limit=256)
    assert f"parameters {mixed.hash()}:" in out
    out = _sigwh(path, "ingest", "--model", MODEL, "--iterations", "3", "--dry-run")
    continued = FreqrexParams.from_dict(PARAMS.to_dict() | {"iterations": 3})
    assert f"parameters {continued.hash()}:" in out and "stay apart" in out
    result = CliRunner().invoke(
        app, ["--warehouse", str(path), "ingest", "--model", MODEL, "--preset", "fast"]
    )
    assert result.exit_code == 1 and "--preset 'fast': expected one of default, quick" in (
        result.output
    )


def test_the_report_shows_the_speech_tasks_detectors(demo) -> None:
    root, path, _lines, _err = demo
    page = (root / "report" / "index.html").read_text()
    start = page.index('<section id="pretrained">')
    section = page[start : page.index("</section>", start)]
    assert 'class="missing"' not in section
    assert all(name in section for name in DETECTORS) and "speech / speech-eval" in section
    assert "mean α between these models" in section


def test_label_transfer_stores_every_clip_it_checked(demo) -> None:
    """Every clip of the dataset gets a row for each applied composite, except the
    explained clips whose stored class is the composite's own (the plan skips those);
    the view counts only the clips of another class."""
    _root, path, _lines, _err = demo
    con = store.connect(path, read_only=True)
    try:
        stored = dict(
            con.execute(
                "SELECT signature_class, count(*) FROM label_transfers GROUP BY 1"
            ).fetchall()
        )
        n_clips = con.execute("SELECT count(*) FROM clips WHERE dataset = 'spoof-eval'").fetchone()[
            0
        ]
        own_class_explained = dict(
            con.execute(
                "SELECT top1, count(*) FROM original_probs WHERE model = ? GROUP BY 1", [MODEL]
            ).fetchall()
        )
        other_class = con.execute(
            "SELECT count(*) FROM label_transfers WHERE orig_top1 <> signature_class"
        ).fetchone()[0]
        in_view = con.execute("SELECT sum(n_clips) FROM label_transfer").fetchone()[0]
        labels = con.execute("SELECT labels FROM tasks WHERE task = 'spoof'").fetchone()[0]
        plans = [label_transfer.plan_transfer(con, MODEL, from_label=labels[c]) for c in stored]
    finally:
        con.close()
    assert stored, "the demo applied no composite"
    assert stored == {c: n_clips - own_class_explained.get(c, 0) for c in stored}
    assert in_view == other_class <= sum(stored.values())
    assert all(not s.clip_ids for plan in plans for s in plan.signatures)


def test_a_second_demo_stores_nothing_and_says_so(demo) -> None:
    root, path, _lines, _err = demo
    before = _tables(path)
    report_written = (root / "report" / "index.html").stat().st_mtime_ns
    lines, err = demo_catalog.demo(root)
    assert _tables(path) == before
    assert (root / "report" / "index.html").stat().st_mtime_ns == report_written
    text = "\n".join(lines)
    assert "nan" not in text and "run " not in text, text
    assert f"ingest: everything is stored for {', '.join(DETECTORS)}, {MODEL}" in lines
    assert any("unchanged since the last build" in line for line in lines)
    assert "ingest " not in err  # no progress bar: nothing to explain


def test_label_transfer_reads_as_the_mask_of_one_class_applied_to_the_other(demo) -> None:
    from sigwarehouse.analyses import label_transfer as analysis

    _root, path, _lines, _err = demo
    con = store.connect(path, read_only=True)
    try:
        section = analysis.run(con)
        directions = con.execute("SELECT from_class, to_class FROM label_transfer").fetchall()
    finally:
        con.close()
    assert section.missing is None and directions
    frame = section.tables[0].frame
    assert frame.columns[0] == "transfer"
    assert sorted(frame["transfer"]) == sorted(
        f"{f}'s mask applied to clips called {t}" for f, t in directions
    )
    # MODEL gives silence "fake" (no fake composite), so the demo transfers the other way
    assert "real's mask applied to clips called fake" in frame["transfer"].to_list()


def test_the_readme_shows_what_this_demo_gives(demo) -> None:
    """The README's quoted outputs are this warehouse's: a change that moves a figure fails
    here until `python tests/readme_examples.py --write` rewrites them."""
    import readme_examples

    _root, path, _lines, _err = demo
    text = readme_examples.README.read_text()
    assert len(readme_examples.queries(text)) == 3
    assert readme_examples.block(text) == readme_examples.render(text, path), (
        "the README's examples differ from the demo warehouse's: run "
        "`.venv/bin/python tests/readme_examples.py --write`"
    )


def test_the_demo_report_says_its_figures_are_illustrative(demo) -> None:
    root, _path, _lines, _err = demo
    page = (root / "report" / "index.html").read_text()
    top = page[: page.index("<nav>")]
    assert "The figures of this page are illustrative" in top
    assert "n = 2 clips" in top and "(needs ≥ 8)" in top


def test_stored_verdicts_hold_in_every_rendering_and_probabilities_reproduce(demo) -> None:
    """Hugging Face and python models (the WebRTC and Earshot detectors read 16-bit
    integers): every stored mask's verdict in NumPy float64 and after a 16-bit WAV round
    trip, and every signal_probs row against a float64 rebuild (tests/reference)."""
    import json

    from reference import check_renderings

    from sigwarehouse.models.loader import load_classifier

    _root, path, _lines, _err = demo
    with store.opened(path, read_only=True) as con:
        entries = {
            model: (kind, ref, labels, None if label_map is None else json.loads(label_map))
            for model, kind, ref, labels, label_map in con.execute(
                "SELECT m.model, m.kind, m.ref, t.labels, m.label_map FROM models m"
                " JOIN tasks t USING (task)"
            ).fetchall()
        }

        def load(model: str):
            kind, ref, labels, label_map = entries[model]
            return load_classifier(kind, ref, labels, label_map, name=model)

        checked = check_renderings(con, load)
    assert checked["masks"] >= 4 and checked["probs"] >= 10


def test_the_notebook_runs_on_the_demo_and_shows_what_the_warehouse_holds(
    demo, monkeypatch
) -> None:
    """docs/notebook.ipynb, executed by a Jupyter kernel on this warehouse: every cell
    runs; its α matrix holds the view's cells; the bins it prints are the stored mask's
    unpacked here; its signals play as WAV audio whose samples are irfft(mask · rfft(clip))
    computed here."""
    import nbformat  # the notebook tools: only this test needs them
    from nbclient import NotebookClient

    from sigwarehouse.audio import load_clip

    _root, path, _lines, _err = demo
    monkeypatch.setenv("SIGWH_WAREHOUSE", str(path))
    nb = nbformat.read(REPO / "docs" / "notebook.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = {c.id: c.outputs for c in nb.cells if c.cell_type == "code"}

    def text(cell: str) -> str:
        return "".join(
            o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs[cell]
        )

    con = duckdb.connect(str(path), read_only=True)
    try:
        cells = con.execute(
            "SELECT source_model, target_model, alpha FROM alpha_transferability"
            " WHERE task = 'speech' AND kind = 'sufficient'"
        ).fetchall()
        clip, n_bins, blob, rate, n = con.execute(
            "SELECT e.clip_id, e.n_bins, e.sufficient_mask, t.sample_rate, c.n_samples"
            " FROM explanations e JOIN clips c USING (clip_id)"
            " JOIN tasks t ON t.task = 'speech'"
            " WHERE e.model = 'webrtc' ORDER BY e.clip_id LIMIT 1"
        ).fetchone()
        samples = load_clip(con, clip)
    finally:
        con.close()
    alpha = text("alpha")
    for source, target, value in cells:  # every cell's value is in the source's row
        row = next(line for line in alpha.splitlines() if line.startswith(f"│ {source} "))
        assert f"{value}" in row or f"{value:.6g}" in row, (source, target, row)
    mask = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[:n_bins].astype(bool)
    kept = np.flatnonzero(mask)
    assert f"kept bins: {kept.tolist()}" in text("mask")
    assert f"at Hz: {np.round(kept * rate / n, 2).tolist()}" in text("mask")
    assert f"{rate} {n} float32" in text("signal")
    played = [
        o["data"]["text/html"]
        for cell in ("signal", "original", "others")
        for o in outputs[cell]
        if "text/html" in o.get("data", {})
    ]
    assert len(played) == 4  # sufficient, original, complete, inverse
    wav = re.search(r"base64,([^\"]+)", played[0])[1]
    heard, heard_rate = sf.read(io.BytesIO(base64.b64decode(wav)), dtype="float32")
    expected = np.fft.irfft(np.fft.rfft(samples.astype(np.float64)) * mask, n=len(samples))
    assert heard_rate == rate and len(heard) == n
    np.testing.assert_allclose(heard, np.clip(expected, -1, 1), atol=1 / 32767 + 1e-6)


def _queries(text: str, pattern: str) -> int:
    return int(re.search(pattern, text)[1].replace(",", ""))


def test_the_dry_run_loads_the_models_and_estimates_the_queries_within_2x(
    demo, tmp_path, monkeypatch
) -> None:
    """A dry run loads every model the job would (so one that cannot load fails it, as
    the job would), and its query estimate is within a factor of 2 of what the job then
    asks: for a model with stored explanations of its parameters (sp5 on the rest of the
    spoof clips), and for parameters nothing was explained with (earshot, two trees)."""
    _root, path, _lines, _err = demo
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    _sigwh(copy, "dataset", "add", "spoof-eval", "--no-progress")
    for model, args in ((MODEL, SAME), ("earshot", [*SAME, "--iterations", "2"])):
        planned = _sigwh(copy, "ingest", "--model", model, *args, "--dry-run")
        assert "models the job loads, each loaded now to check:" in planned
        estimate = _queries(planned, r"estimated model queries: ~([\d,]+)")
        done = _sigwh(copy, "ingest", "--model", model, *args)
        actual = _queries(done, r"([\d,]+) model queries in")
        print(f"{model}: estimated {estimate:,} queries, asked {actual:,}")  # pytest -s
        assert 0.5 <= actual / estimate <= 2, (model, estimate, actual)
    # outside the checkout, without the catalog that lists the hf model: the dry run fails
    monkeypatch.setenv("SIGWH_CATALOG", str(tmp_path / "no-catalog"))
    result = CliRunner().invoke(
        app, ["--warehouse", str(copy), "ingest", "--model", MODEL, "--preset", "default",
              "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 1 and "error:" in result.output and MODEL in result.output


def test_the_dearest_jobs_start_first() -> None:
    """The demo starts its ingest jobs by estimated queries times their task's audio: the
    genre job (long clips) before the emotion job with as many clips, a job with nothing
    to explain last, and equal jobs in plan order; the models it names first before all."""
    from sigwarehouse.cli.demo import dearest_first
    from sigwarehouse.jobs.ingest import IngestPlan

    def plan(model: str, task: str, clips: int) -> IngestPlan:
        return IngestPlan(model=model, task=task, task_labels=["a", "b"], datasets=[],
                          params=PARAMS, targets=[model], clip_ids=list(range(clips)),
                          cross_fill=[], est_queries_per_clip=100)  # fmt: skip

    plans = [plan("probes-only", "genre", 0), plan("vc1", "emotion", 20),
             plan("vc2", "emotion", 20), plan("mc1", "genre", 20)]  # fmt: skip
    samples = {"emotion": 20 * 32_000, "genre": 20 * 48_000}
    order = [p.model for p in dearest_first(plans, samples)]
    assert order == ["mc1", "vc1", "vc2", "probes-only"]
    # the models named first start first, in that order, the rest as before
    order = [p.model for p in dearest_first(plans, samples, first=("vc2", "probes-only"))]
    assert order == ["vc2", "probes-only", "mc1", "vc1"]


def test_the_demo_explains_fewer_clips_only_with_the_models_it_names() -> None:
    """voice2gender explains the first 3 clips of each label, every other model 4; with
    --all-clips (None) or a smaller --per-label every model explains the same clips."""
    from sigwarehouse.cli.demo import DEMO_PER_LABEL, explained_per_label

    assert explained_per_label("voice2gender", DEMO_PER_LABEL) == 3
    assert explained_per_label("vc1", DEMO_PER_LABEL) == DEMO_PER_LABEL
    assert explained_per_label("voice2gender", 2) == 2
    assert explained_per_label("voice2gender", None) is None


def test_a_workers_start_line_says_what_its_job_does() -> None:
    """A model left to answer says it stores its probes (and answers what is stored), not
    that it explains 0 clips."""
    from sigwarehouse.cli.demo import _what_it_does
    from sigwarehouse.jobs.ingest import IngestPlan

    def plan(clips: int, cross: int, probes: int | None) -> IngestPlan:
        return IngestPlan(model="m", task="t", task_labels=["a", "b"], datasets=[],
                          params=PARAMS, targets=["m"], clip_ids=list(range(clips)),
                          cross_fill=[("x", c) for c in range(cross)],
                          probe_samples=probes)  # fmt: skip

    assert _what_it_does(plan(2, 1, 16000)) == "explaining 2 clip(s)"
    assert _what_it_does(plan(0, 0, 16000)) == "storing its probes"
    assert _what_it_does(plan(0, 3, 16000)) == (
        "storing its probes and answering 3 stored explanation(s)"
    )
    assert _what_it_does(plan(0, 3, None)) == "answering 3 stored explanation(s)"
