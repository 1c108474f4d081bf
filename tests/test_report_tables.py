"""Every table (CSV) the report writes holds the numbers it held before issue 33 moved the
analyses' row work into DuckDB: on the small hand-made warehouse and on a small bench
warehouse, against the set the earlier code wrote (tests/expected_report/, with the script
that regenerates it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_tables import WAREHOUSES, differences, report_tables

EXPECTED = Path(__file__).resolve().parent / "expected_report"

pytestmark = pytest.mark.xdist_group("report")


@pytest.mark.parametrize("name", sorted(WAREHOUSES))
def test_every_table_of_the_report_is_what_it_was(name: str, tmp_path: Path) -> None:
    got = report_tables(WAREHOUSES[name](tmp_path), tmp_path / "out")
    expected = {f.name: f.read_text(encoding="utf-8") for f in (EXPECTED / name).glob("*.csv")}
    assert sorted(got) == sorted(expected)
    problems = [d for f in sorted(got) for d in differences(expected[f], got[f], f)]
    assert problems == []


def test_the_comparison_sees_a_changed_figure() -> None:
    """A figure off by more than a double's last bits, a row lost, a text changed: each is
    a difference; a last-bit difference or -0.0 for 0.0 is not."""
    table = "model,alpha,n\nm1,0.5714285714285714,7\nm2,0.0,3\n"
    assert differences(table, table.replace("0.5714285714285714", "0.5714285714285713"), "t") == []
    assert differences(table, table.replace("m2,0.0", "m2,-0.0"), "t") == []
    assert differences(table, table.replace("0.5714285714285714", "0.5714285714"), "t")
    assert differences(table, table.replace(",7", ",8"), "t")
    assert differences(table, table.replace("m1", "m9"), "t")
    assert differences(table, table.rsplit("m2", 1)[0], "t")


def test_counting_clips_a_few_at_a_time_changes_no_table(tmp_path: Path, monkeypatch) -> None:
    """The clip-level analyses count the signals of a range of clips per query: with
    ranges of 3 clips (7 ranges on the small warehouse) every table is the same."""
    from sigwarehouse.analyses import common

    monkeypatch.setattr(common, "CLIPS_PER_QUERY", 3)
    got = report_tables(WAREHOUSES["small"](tmp_path), tmp_path / "out")
    expected = {f.name: f.read_text(encoding="utf-8") for f in (EXPECTED / "small").glob("*.csv")}
    assert sorted(got) == sorted(expected)
    assert [d for f in sorted(got) for d in differences(expected[f], got[f], f)] == []
