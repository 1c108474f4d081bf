"""The analyses equal a hand computation from the stored probabilities of a small warehouse."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats
from sharing import copy_of
from small_warehouse import PARAMS_HASH, TASKS, entropy

from sigwarehouse import analyses
from sigwarehouse.analyses import (
    accuracy,
    beta_curve,
    bootstrap,
    flat_earthers,
    silence,
    sufficient_vs_complete,
)
from sigwarehouse.analyses import transferability as tr

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`


@pytest.fixture(scope="module")
def filled(small_filled, tmp_path_factory):
    path = copy_of(small_filled[0], tmp_path_factory.mktemp("wh"))
    rows = small_filled[1]
    con = duckdb.connect(str(path), read_only=True)
    yield con, rows
    con.close()


def _cells(rows, accept) -> dict:
    """(task, kind, source, target) -> (n, share accepted), by hand from the inserted rows."""
    cells = defaultdict(list)
    for task, m, _clip, kind, target, source_class, q, t1 in rows.signals:
        if kind in ("sufficient", "complete"):
            cells[(task, kind, m, target)].append(accept(source_class, q, t1, task))
    return {k: (len(v), sum(v) / len(v)) for k, v in cells.items()}


def _alpha(rows) -> dict:
    return _cells(rows, lambda c, _q, t1, _task: t1 == c)


def test_alpha_matrix_cells_and_avg_equal_hand_computation(filled) -> None:
    con, rows = filled
    alpha = _alpha(rows)
    meta, acc = tr.model_meta(con), tr.accuracy_table(con)
    cells = tr.cells(con)
    for task, spec in TASKS.items():
        models = spec["models"]
        for kind in ("sufficient", "complete"):
            m = tr.matrix(cells.filter(pl.col("task") == task), kind, meta, acc)
            assert m["model"].to_list() == models
            assert m.columns[-len(models) - 1 : -1] == models
            for row in m.iter_rows(named=True):
                s = row["model"]
                assert row[s] is None  # the diagonal is blank, as in the paper
                for t in models:
                    if t != s:
                        assert row[t] == pytest.approx(alpha[(task, kind, s, t)][1])
                off = [alpha[(task, kind, s, t)][1] for t in models if t != s]
                assert row["avg"] == pytest.approx(sum(off) / len(off))
                assert row["n_signals"] == alpha[(task, kind, s, s)][0]


def test_alpha_avg_equals_the_summary_view(filled) -> None:
    con, _ = filled
    cells = tr.cells(con)
    meta, acc = tr.model_meta(con), tr.accuracy_table(con)
    summary = con.execute(
        "SELECT task, kind, model, avg_out FROM transferability_summary"
    ).fetchall()
    for task, kind, model, avg_out in summary:
        m = tr.matrix(cells.filter(pl.col("task") == task), kind, meta, acc)
        assert m.filter(pl.col("model") == model)["avg"][0] == pytest.approx(avg_out)


def _empty(rows, model: str, clip: int, kind: str) -> bool:
    """Whether the stored mask of this kind keeps no bin (from the inserted masks)."""
    suff, comp = rows.masks[(model, clip)]
    mask = suff if kind == "sufficient" else comp
    return mask is not None and not mask.any()


def test_alpha_over_nonempty_signals_equals_hand_computation(filled) -> None:
    con, rows = filled
    accepted, empties = defaultdict(list), defaultdict(int)
    for task, m, clip, kind, target, c, _q, t1 in rows.signals:
        if kind in ("sufficient", "complete"):
            if _empty(rows, m, clip, kind):
                empties[(task, kind, m, target)] += 1
            else:
                accepted[(task, kind, m, target)].append(t1 == c)
    cells, meta, acc = tr.cells(con), tr.model_meta(con), tr.accuracy_table(con)
    null_cells = 0
    for task, spec in TASKS.items():
        models = spec["models"]
        for kind in ("sufficient", "complete"):
            group = cells.filter(pl.col("task") == task)
            m = tr.matrix(group, kind, meta, acc, "value_nonempty")
            for row in m.iter_rows(named=True):
                s = row["model"]
                assert row["n_empty"] == empties[(task, kind, s, s)]
                off = []
                for t in models:
                    if t == s:
                        continue
                    kept = accepted[(task, kind, s, t)]
                    want = sum(kept) / len(kept) if kept else None
                    assert row[t] == (None if want is None else pytest.approx(want))
                    null_cells += want is None
                    off += [] if want is None else [want]
                assert row["avg"] == (pytest.approx(np.mean(off)) if off else None)
    assert null_cells > 0  # the deaf model's row: only silence, no figure
    section = tr.run(con)
    notes = [n for n in section.notes if "are empty" in n]
    n_empty_t = sum(_empty(rows, m, c, "sufficient") for (m, c) in rows.masks if m[0] == "m")
    assert notes[0].startswith(f"t / d: {n_empty_t} of the ")


def test_silence_card_shows_each_models_stored_probe_answers(filled) -> None:
    con, rows = filled
    card = silence.card(con)
    models = [m for spec in TASKS.values() for m in spec["models"]]
    assert card["model"].to_list() == sorted(models)
    task_of = {m: t for t, spec in TASKS.items() for m in spec["models"]}
    for row in card.iter_rows(named=True):
        m = row["model"]
        labels = rows.labels[task_of[m]]
        for probe, prefix in (("silence", "silence"), ("noise-60dbfs", "noise")):
            p = np.asarray(rows.probes[(m, probe)])
            assert row[f"{prefix}_class"] == labels[int(p.argmax())]
            assert row[f"{prefix}_prob"] == pytest.approx(p.max())
        assert row["seconds"] == pytest.approx(0.5)
        assert row["explained"] == sum(1 for mm, _c in rows.masks if mm == m)
        assert row["empty_sufficient"] == sum(
            _empty(rows, mm, c, "sufficient") for mm, c in rows.masks if mm == m
        )
    assert card.filter(pl.col("model") == "s3")["empty_sufficient"][0] == 10


def test_flagged_note_gives_the_intervals_and_whether_the_call_holds_without_silence() -> None:
    row = {"model": "m", "task": "t", "dataset": "d", "kind": "sufficient", "n_clips": 12,
           "gap_out": -0.3, "gap_out_lo": -0.4, "gap_out_hi": -0.2, "gap_in": -0.25,
           "gap_in_lo": -0.35, "gap_in_hi": -0.15}  # fmt: skip
    view = {"n_signals": 10, "n_empty": 4, "gap_out_nonempty": -0.2, "gap_in_nonempty": -0.3}

    def note(**changes) -> str:
        return flat_earthers.flagged_note(row, {**view, **changes}, 0.1)

    assert "12 clips): gap_out -0.30 [-0.40, -0.20], gap_in -0.25 [-0.35, -0.15]" in note()
    assert "4 of its 10 signals are empty" in note()
    assert "the point call holds without silence" in note()
    # a gap of exactly the margin is not beyond it, as in the view's rule (<)
    assert "does not hold" in note(gap_in_nonempty=-0.1)
    assert "hold" not in note(gap_out_nonempty=None)
    assert "empty" not in flat_earthers.flagged_note(row, None, 0.1)


def test_matrix_carries_size_accuracy_and_backbone(filled) -> None:
    con, rows = filled
    right = defaultdict(list)
    for model, clip, _p, top1 in rows.originals:
        task, label = rows.clips[clip]
        right[model].append(rows.labels[task][top1] == label)
    m = tr.matrix(tr.cells(con).filter(pl.col("task") == "t"), "sufficient", tr.model_meta(con),
                  tr.accuracy_table(con))  # fmt: skip
    for i, row in enumerate(m.iter_rows(named=True)):
        assert row["size_M"] == pytest.approx(10_000 * (i + 1) / 1e6)
        assert row["backbone"] == ("cnn" if i % 2 else "mlp")
        assert row["accuracy"] == pytest.approx(sum(right[row["model"]]) / len(right[row["model"]]))


def test_beta_matrix_equals_hand_computation(filled) -> None:
    con, rows = filled
    eps = tr.BETA_EPS

    def transfers(c, q, t1, task):  # Def. 4: the source's class, with confidence
        return t1 == c and entropy(q) <= eps * math.log2(len(rows.labels[task])) + 1e-6

    beta = _cells(rows, transfers)
    cells = tr.cells(con, eps)
    meta, acc = tr.model_meta(con), tr.accuracy_table(con)
    m = tr.matrix(cells.filter(pl.col("task") == "u"), "complete", meta, acc)
    for row in m.iter_rows(named=True):
        for t in TASKS["u"]["models"]:
            if t != row["model"]:
                assert row[t] == pytest.approx(beta[("u", "complete", row["model"], t)][1])


def test_paired_test_over_clips_equals_a_hand_computation(filled) -> None:
    """Per clip: the shares of (source, other target) pairs accepting its sufficient and
    its complete signal, over the sources with both; the test's mean difference, n and
    exact sign-flip p (2^10 flips, enumerated here) on those."""
    import itertools

    con, rows = filled
    accepted = {}
    for task, s, clip, kind, target, source_class, _q, t1 in rows.signals:
        if kind in ("sufficient", "complete") and s != target:
            accepted[(task, clip, s, target, kind)] = float(t1 == source_class)
    section = sufficient_vs_complete.run(con)
    assert section.missing is None
    table = section.tables[0].frame
    pooled = []
    for task in TASKS:
        diffs = []
        for clip in sorted(c for c, (t, _l) in rows.clips.items() if t == task):
            pairs = [(k[2], k[3]) for k in accepted
                     if k[0] == task and k[1] == clip and k[4] == "complete"]  # fmt: skip
            if pairs:
                suff = np.mean([accepted[(task, clip, s, t, "sufficient")] for s, t in pairs])
                comp = np.mean([accepted[(task, clip, s, t, "complete")] for s, t in pairs])
                diffs.append(comp - suff)
        d = np.array(diffs)
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        exact = np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-12)
        row = table.filter(pl.col("task") == task).row(0, named=True)
        assert row["n_clips"] == d.size >= 8
        assert row["mean_diff"] == pytest.approx(d.mean())
        assert row["p"] == pytest.approx(exact)
        assert row["reject"] == (exact < 0.05)
        assert row["lo"] <= row["mean_diff"] <= row["hi"]
        pooled += diffs
    everything = table.filter(pl.col("task") == "all").row(0, named=True)
    assert everything["n_clips"] == len(pooled)
    assert everything["mean_diff"] == pytest.approx(np.mean(pooled))
    assert not section.below_minimum


def test_interval_of_each_cell_is_the_wilson_interval_of_its_clips(filled) -> None:
    con, rows = filled
    alpha = _alpha(rows)
    frame = bootstrap.intervals(con)
    off_diagonal = {k for k in alpha if k[2] != k[3]}
    assert frame.height == len(off_diagonal)
    for row in frame.iter_rows(named=True):
        key = (row["task"], row["kind"], row["source_model"], row["target_model"])
        n, a = alpha[key]
        k = round(a * n)
        assert (row["n_clips"], row["n_accepted"], row["alpha"]) == (n, k, pytest.approx(a))
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert (row["lo"], row["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert row["lo"] < row["hi"]  # never a point, not even at α = 0 or 1
    beta = bootstrap.intervals(con, 0.5)
    assert beta.height == frame.height and (beta["alpha"] <= frame["alpha"] + 1e-12).all()


def test_accuracy_carries_its_clips_and_wilson_interval(filled) -> None:
    con, rows = filled
    frame = accuracy.table(con)
    right = defaultdict(list)
    for m, clip, _p, top1 in rows.originals:
        task, label = rows.clips[clip]
        right[m].append(rows.labels[task][top1] == label)
    assert sorted(frame["model"]) == sorted(right)
    for row in frame.iter_rows(named=True):
        k, n = sum(right[row["model"]]), len(right[row["model"]])
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert (row["n_clips"], row["n_correct"]) == (n, k)
        assert (row["lo"], row["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_beta_curve_ends_at_alpha_at_eps_one_and_never_falls(filled) -> None:
    con, rows = filled
    alpha = _alpha(rows)
    curve = beta_curve.curve(con)
    models = sum(len(s["models"]) for s in TASKS.values())
    at_one = curve.filter(pl.col("eps") == 1.0)
    assert at_one.height == 2 * models
    for row in at_one.iter_rows(named=True):  # at ε = 1 only the class counts: mean α
        task, kind, m = row["task"], row["kind"], row["model"]
        off = [alpha[(task, kind, m, t)][1] for t in TASKS[task]["models"] if t != m]
        assert row["beta"] == pytest.approx(np.mean(off))
    assert at_one["beta"].max() < 1.0  # would be 1 everywhere if the class were ignored
    for _key, g in curve.group_by("task", "kind", "model"):
        assert (g.sort("eps")["beta"].diff().drop_nulls() >= -1e-12).all()
    # One point by hand: m1's sufficient signals at eps = 0.5, mean over the other models.
    limit = 0.5 * math.log2(3)
    shares = [
        np.mean([t1 == sc and entropy(q) <= limit + 1e-6
                 for _t, s, _c, k, tg, sc, q, t1 in rows.signals
                 if s == "m1" and k == "sufficient" and tg == t])
        for t in ("m2", "m3", "m4")
    ]  # fmt: skip
    got = curve.filter(
        (pl.col("model") == "m1") & (pl.col("kind") == "sufficient") & (pl.col("eps") == 0.5)
    )
    assert got["beta"][0] == pytest.approx(np.mean(shares))


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_flat_earther_notes_name_those_whose_intervals_exclude_the_margin(filled, margin) -> None:
    con, _ = filled
    section = flat_earthers.run(con, margin)
    frame = section.tables[0].frame
    named = frame.filter(
        (pl.col("gap_out_hi") < -margin)
        & (pl.col("gap_in_hi") < -margin)
        & (pl.col("n_clips") >= 8)
    )
    assert frame.filter(pl.col("flat_earther")).equals(named)
    notes = [n for n in section.notes if "is a flat-earther on" in n]
    assert sorted((n.split()[0], n.split("(")[1].split()[0]) for n in notes) == sorted(
        named.select("model", "kind").rows()
    )
    assert bool(notes) != any("No model is named a flat-earther" in n for n in section.notes)
    # the view's rows, its point rule and silence figures, travel as a CSV
    assert section.tables[1].name == "flat_earthers_view" and not section.tables[1].in_page


DEEPFAKE = ["composition", "spectral_entropy", "label_transfer", "asr_fidelity"]
NEEDS_DEEPFAKE_JOBS = ["composition", "label_transfer", "asr_fidelity"]  # not ingest alone


def test_every_section_has_charts_that_validate(filled) -> None:
    con, rows = filled
    sections = analyses.run_all(con)
    assert [s.key for s in sections] == [
        "accuracy", "transferability", "silence", "sufficient_vs_complete", "beta_curve",
        "bootstrap",
        "flat_earthers", "multiplicity", "pretrained", *DEEPFAKE, "provenance",
    ]  # fmt: skip
    # the small warehouse has no deepfake jobs' rows, no model of kind python and one
    # sufficient mask per clip
    absent = {*NEEDS_DEEPFAKE_JOBS, "multiplicity", "pretrained"}
    for section in sections:
        assert (section.missing is None) == (section.key not in absent), section.key
        for chart in section.charts:
            chart.chart.to_dict()  # validates against the Vega-Lite schema
    provenance = {t.name: t for t in next(s for s in sections if s.key == "provenance").tables}
    params = provenance["freqrex_params"].frame
    assert params.columns == ["parameter", PARAMS_HASH]
    stored = dict(params.iter_rows())
    assert stored == {
        "explanations": str(len(rows.masks)),
        "shown for tasks": "t, u",
        "seed": "0",
        "space": "fft",
        "delta": "0.5",
    }


def test_empty_warehouse_gives_missing_sections(wh_path: Path) -> None:
    con = duckdb.connect(str(wh_path), read_only=True)
    try:
        for section in analyses.run_all(con):
            assert section.missing and "sigwh" in section.missing, section.key
            assert section.tables == [] and section.charts == []
        assert accuracy.run(con).missing.startswith("No original probabilities")
    finally:
        con.close()


def test_has_relations_finds_tables_views_and_table_macros_and_nothing_else(wh_path) -> None:
    from sigwarehouse import store
    from sigwarehouse.analyses.common import has_relations

    con = store.connect(wh_path, read_only=True)
    try:
        assert has_relations(con, "signal_probs")  # a table
        assert has_relations(con, "alpha_transferability", "signal_probs")  # a view, a table
        assert has_relations(con, "beta_transferability_for")  # a table macro
        assert has_relations(con, "beta_transferability_for", "runs")
        assert has_relations(con)  # nothing asked for
        assert not has_relations(con, "no_such_table")
        assert not has_relations(con, "signal_probs", "no_such_table")
        assert not has_relations(con, "beta_transferability_for", "no_such_macro")
        assert not has_relations(con, "abs")  # a scalar function is no relation
    finally:
        con.close()
