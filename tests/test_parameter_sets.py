"""Several freqrex parameter sets in one warehouse: the views show one per task by the rule
of `parameter_sets`, and the `_for` macros reach every set.

The small fixed warehouse (tests/small_warehouse.py) holds set A for both tasks. Tests
add a second set by copying some of its explanations and signals under a new hash and a
new run, with every target's top-1 moved to the next class, so that a view mixing the
sets, or showing the wrong one, gives other numbers than the hand computation.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest
from sharing import copy_of
from small_warehouse import PARAMS_HASH, TASKS

from sigwarehouse import store
from sigwarehouse.store import transfer_counts

A = PARAMS_HASH
B = "0123456789abcdef"
CELL = ["task", "dataset", "kind", "source_model", "target_model"]


@pytest.fixture
def path(small_filled, tmp_path: Path) -> Path:
    return copy_of(small_filled[0], tmp_path)


def add_set(path: Path, params_hash: str, models: list[str], started_at: str) -> None:
    """Copy `models`' explanations and signals of set A into set `params_hash`, made by a
    new run started at `started_at`, with every target's top-1 moved to the next class."""
    run = str(uuid.uuid4())
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "INSERT INTO runs (run_id, job, params_hash, seed, code_version, started_at,"
            " status) VALUES (?, 'ingest', ?, 0, 'test', ?::TIMESTAMP, 'done')",
            [run, params_hash, started_at],
        )
        con.execute(
            "INSERT INTO freqrex_params VALUES (?, ?)",
            [params_hash, json.dumps({"seed": 0, "iterations": 9})],
        )
        con.execute(
            "INSERT INTO explanations SELECT * REPLACE (?::VARCHAR AS params_hash, ?::UUID AS"
            " run_id) FROM explanations WHERE params_hash = ? AND model IN"
            " (SELECT unnest(?::VARCHAR[]))",
            [params_hash, run, A, models],
        )
        con.execute(
            "INSERT INTO signal_probs SELECT s.* REPLACE (?::VARCHAR AS params_hash,"
            " ((s.top1 + 1) % len(t.labels))::SMALLINT AS top1, ?::UUID AS run_id)"
            " FROM signal_probs s JOIN models m ON m.model = s.source_model"
            " JOIN tasks t ON t.task = m.task"
            " WHERE s.params_hash = ? AND s.source_model IN (SELECT unnest(?::VARCHAR[]))",
            [params_hash, run, A, models],
        )
        transfer_counts.rebuild(con)  # rows inserted by hand, not by sigwarehouse's writer
    finally:
        con.close()


def hand_alpha(path: Path, params_hash: str) -> dict[tuple, tuple[int, float]]:
    """(task, kind, source, target) -> (n_signals, α) from the raw signal_probs rows."""
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute(
        "SELECT m.task, s.kind, s.source_model, s.target_model, s.top1 = s.source_class"
        " FROM signal_probs s JOIN models m ON m.model = s.source_model"
        " WHERE s.params_hash = ? AND s.kind IN ('sufficient', 'complete')",
        [params_hash],
    ).fetchall()
    con.close()
    cells = defaultdict(list)
    for task, kind, source, target, accepted in rows:
        cells[(task, kind, source, target)].append(accepted)
    return {k: (len(v), sum(v) / len(v)) for k, v in cells.items()}


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = store.connect(path, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def alpha(path: Path, source: str, column: str = "alpha") -> dict[tuple, tuple[int, float]]:
    """(task, kind, source, target) -> (n_signals, `column`) of a view or macro's rows."""
    rows = query(
        path, f"SELECT task, kind, source_model, target_model, n_signals, {column} FROM {source}"
    )
    return {tuple(r[:4]): (r[4], pytest.approx(r[5])) for r in rows}


def shown(path: Path) -> dict[str, str]:
    return dict(query(path, "SELECT task, params_hash FROM parameter_sets WHERE shown"))


def test_views_show_the_set_with_most_explanations_and_the_macros_reach_the_other(
    path: Path,
) -> None:
    add_set(path, B, ["m1", "m2"], "2030-01-01")  # newer, but 20 explanations of t against 40
    listed = query(
        path,
        "SELECT task, params_hash, shown, n_models, n_explanations, params->>'iterations'"
        " FROM parameter_sets ORDER BY task, params_hash",
    )
    assert listed == [
        ("t", B, False, 2, 20, "9"),
        ("t", A, True, 4, 40, None),
        ("u", A, True, 3, 30, None),
    ]
    # the views: set A only, every cell once, as computed by hand from A's rows
    assert alpha(path, "alpha_transferability") == hand_alpha(path, A)
    # the macro: set B only, as computed by hand from B's rows (which differ from A's)
    b = alpha(path, f"alpha_transferability_for('{B}')")
    assert b == hand_alpha(path, B) != {k: v for k, v in hand_alpha(path, A).items() if k in b}
    assert {k[2] for k in b} == {"m1", "m2"}
    assert alpha(path, f"alpha_transferability_for('{A}')") == hand_alpha(path, A)
    # β at ε = 1 is α, for the shown sets and for B
    assert alpha(path, "beta_transferability(1.0)", "beta") == hand_alpha(path, A)
    assert alpha(path, f"beta_transferability_for(1.0, '{B}')", "beta") == hand_alpha(path, B)
    # summary and flat-earthers: one row per model and kind, of the set asked for
    for source, ph in (
        ("transferability_summary", A),
        ("flat_earthers", A),
        ("flat_earthers_at(0.05)", A),
        (f"transferability_summary_for('{B}')", B),
        (f"flat_earthers_for(0.1, '{B}')", B),
    ):
        rows = query(path, f"SELECT task, dataset, kind, model, params_hash FROM {source}")
        assert {r[4] for r in rows} == {ph}, source
        assert len(rows) == len({r[:4] for r in rows}), source


def test_a_tie_goes_to_the_set_of_the_latest_run_task_by_task(path: Path) -> None:
    add_set(path, B, TASKS["u"]["models"], "2030-01-01")  # u: 30 explanations each, B newer
    assert shown(path) == {"t": A, "u": B}
    rows = query(path, "SELECT DISTINCT task, params_hash FROM alpha_transferability")
    assert sorted(rows) == [("t", A), ("u", B)]
    expected = {k: v for k, v in hand_alpha(path, B).items() if k[0] == "u"}
    expected |= {k: v for k, v in hand_alpha(path, A).items() if k[0] == "t"}
    assert alpha(path, "alpha_transferability") == expected


def test_a_tie_with_an_older_run_keeps_the_set_shown(path: Path) -> None:
    add_set(path, B, TASKS["u"]["models"], "2020-01-01")  # older than set A's run (2024)
    assert shown(path) == {"t": A, "u": A}


def test_every_view_has_one_row_per_cell_whatever_the_sets(path: Path) -> None:
    add_set(path, B, ["m1", "m2", "m3", "m4", "s1"], "2030-01-01")  # t: a tie, B newer
    assert shown(path) == {"t": B, "u": A}
    keys = ", ".join(CELL)
    for source in ("alpha_transferability", "beta_transferability(0.5)"):
        dupes = query(path, f"SELECT {keys} FROM {source} GROUP BY ALL HAVING count(*) > 1")
        assert dupes == [], source
    for source in ("transferability_summary", "flat_earthers"):
        dupes = query(
            path,
            f"SELECT task, dataset, kind, model FROM {source} GROUP BY ALL HAVING count(*) > 1",
        )
        assert dupes == [], source


def test_report_analyses_show_the_shown_set_and_name_every_set(path: Path) -> None:
    from sigwarehouse.analyses import beta_curve, bootstrap, provenance, transferability

    add_set(path, B, ["m1", "m2"], "2030-01-01")
    con = store.connect(path, read_only=True)
    try:
        frames = {
            "alpha": transferability.cells(con),
            "beta": transferability.cells(con, 0.5),
            "beta curve": beta_curve.curve(con, (0.5, 1.0)),
            "bootstrap": bootstrap.intervals(con),
        }
        params = provenance.parameter_sets(con)
    finally:
        con.close()
    for name, frame in frames.items():
        assert set(frame["params_hash"]) == {A}, name
    shown_row = params.filter(params["parameter"] == "shown for tasks").row(0, named=True)
    assert (shown_row[A], shown_row[B]) == ("t, u", "-")


def test_the_current_set_is_shown_wherever_its_task_has_explanations(path: Path) -> None:
    add_set(path, B, ["m1", "m2"], "2020-01-01")  # fewer explanations, an older run
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO current_params (params_hash) VALUES (?)", [B])
    con.close()
    assert shown(path) == {"t": B, "u": A}  # u has no explanation with B
    rows = query(path, "SELECT task, params_hash, current FROM parameter_sets ORDER BY ALL")
    assert rows == [("t", B, True), ("t", A, False), ("u", A, False)]
    expected = {k: v for k, v in hand_alpha(path, B).items() if k[0] == "t"}
    expected |= {k: v for k, v in hand_alpha(path, A).items() if k[0] == "u"}
    assert alpha(path, "alpha_transferability") == expected


def test_migrating_an_older_warehouse_makes_its_largest_set_current(path: Path) -> None:
    add_set(path, B, ["m1", "m2", "s1"], "2030-01-01")  # newer, fewer explanations
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE current_params")
    con.execute(f"DELETE FROM {store.MIGRATIONS_TABLE} WHERE version = 10")
    con.close()
    con = store.connect(path, package_views=False)
    try:
        applied = store.migrate(con)
        assert [m.version for m in applied] == [10]
        assert con.execute("SELECT params_hash FROM current_params").fetchall() == [(A,)]
    finally:
        con.close()
    assert shown(path) == {"t": A, "u": A}
