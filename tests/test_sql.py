"""`sigwh sql` as colleagues will use it: mistakes, several statements, and statements
that destroy data (issue 12, point 4)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from sharing import copy_of, digest, sigwh


@pytest.fixture(scope="module")
def filled(small_filled, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(small_filled[0], tmp_path_factory.mktemp("filled"))


@pytest.fixture
def wh(filled: Path, tmp_path: Path) -> Path:
    return copy_of(filled, tmp_path / "wh")


def _count(path: Path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.parametrize("query", ["", "   ", ";", " ; ;", "/* only a comment */"])
def test_an_empty_query_is_refused(wh: Path, query: str) -> None:
    result = sigwh(wh, "sql", query)
    assert result.exit_code == 1
    assert result.output == (
        "error: the query is empty; give one or more statements, e.g. "
        'sigwh sql "SELECT * FROM model_accuracy"\n'
    )


@pytest.mark.parametrize(
    "query, kind",
    [
        ("INSERT INTO freqrex_params VALUES ('abc', '{}')", "INSERT"),
        ("DELETE FROM runs", "DELETE"),
        ("CREATE TABLE mine (x INTEGER)", "CREATE"),
        ("DROP TABLE clips", "DROP"),
        ("UPDATE models SET backbone = 'x'", "UPDATE"),
    ],
)
def test_a_write_in_read_only_mode_says_to_add_write(wh: Path, query: str, kind: str) -> None:
    before = digest(wh.parent)
    result = sigwh(wh, "sql", query)
    assert result.exit_code == 1
    assert result.output == (
        f"error: {kind} would change the warehouse, which `sigwh sql` opens read-only; "
        "add --write to change it (nothing was changed)\n"
    )
    assert digest(wh.parent) == before


def test_several_statements_print_every_result(wh: Path) -> None:
    result = sigwh(wh, "sql", "SELECT 1 AS first; SELECT count(*) AS n FROM models")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "-- [1/2] SELECT 1 AS first\n" in out
    assert "-- [2/2] SELECT count(*) AS n FROM models\n" in out
    assert out.index("first") < out.index("-- [2/2]") < out.index("│ 7 ")  # 4 + 3 models

    # a TEMP table is the reader's own, even on a read-only file
    result = sigwh(wh, "sql", "CREATE TEMP TABLE t AS SELECT 42 AS x; SELECT x * 2 AS y FROM t")
    assert result.exit_code == 0, result.output
    assert "-- [1/2] CREATE TEMP TABLE t AS SELECT 42 AS x\nCREATE: 1 row(s)" in result.output
    assert "│ 84  │" in result.output


def test_several_results_into_one_file_or_format_are_refused(wh: Path, tmp_path: Path) -> None:
    query = "SELECT 1 AS a; SELECT 2 AS b"
    result = sigwh(wh, "sql", query, "--format", "csv")
    assert result.exit_code == 1
    assert result.output == (
        "error: --format csv takes one result, and this query has 2 statements that return "
        "rows; run them one at a time, or show them all with --format table\n"
    )
    out = tmp_path / "two.csv"
    result = sigwh(wh, "sql", query, "--out", str(out))
    assert result.exit_code == 1 and f"error: --out {out} takes one result" in result.output
    assert not out.exists()
    # one statement with rows among others is fine
    result = sigwh(wh, "sql", "SET threads = 1; SELECT 3 AS c", "--format", "csv")
    assert result.exit_code == 0 and result.output.endswith("c\n3\n")


DESTRUCTIVE = [
    ("DROP TABLE signal_probs", "signal_probs"),
    ("DELETE FROM explanations", "explanations"),
    ("TRUNCATE original_probs", "original_probs"),
    ("ALTER TABLE models DROP COLUMN backbone", "models"),
    ("UPDATE clips SET label = 'a'", "clips"),
]


@pytest.mark.parametrize("query, table", DESTRUCTIVE)
def test_destructive_statements_ask_first(wh: Path, query: str, table: str) -> None:
    n = _count(wh, table)
    before = digest(wh.parent)
    for answer in (None, "n\n"):  # no terminal (end of input), then a "no"
        result = sigwh(wh, "sql", query, "--write", input=answer)
        assert result.exit_code == 1
        assert f"This changes what the warehouse stores:\n  {query} ({n:,} rows in {table})\n" in (
            result.output
        )
        assert "Run it? [y/N]:" in result.output
        assert "error: not confirmed: nothing was run, the warehouse is unchanged\n" in (
            result.output
        )
        assert digest(wh.parent) == before
    result = sigwh(wh, "sql", query, "--write", input="y\n")
    assert result.exit_code == 0, result.output
    assert digest(wh.parent) != before


def test_yes_skips_the_question_and_harmless_writes_never_ask(wh: Path) -> None:
    result = sigwh(wh, "sql", "DELETE FROM job_errors", "--write", "--yes")
    assert result.exit_code == 0 and "Run it?" not in result.output
    assert result.output == "DELETE: 0 row(s)\n"
    result = sigwh(wh, "sql", "INSERT INTO freqrex_params VALUES ('abc', '{}')", "--write")
    assert result.exit_code == 0 and result.output == "INSERT: 1 row(s)\n"
    # dropping what the same query made is not the warehouse's data
    result = sigwh(
        wh, "sql", "CREATE TEMP TABLE scratch AS SELECT 1 AS x; DROP TABLE scratch", "--write"
    )
    assert result.exit_code == 0 and "Run it?" not in result.output


def test_after_a_dropped_table_info_and_report_say_what_is_missing(
    wh: Path, tmp_path: Path
) -> None:
    assert sigwh(wh, "sql", "DROP TABLE clips", "--write", "--yes").exit_code == 0
    expected = (
        f"error: {wh} is damaged: table clips is missing. sigwarehouse neither reads nor "
        "writes it: restore the file from a backup or a colleague's copy, or rebuild it "
        "from an export with DuckDB's IMPORT DATABASE (see `sigwh export --help`)\n"
    )
    for args in (["info"], ["report", "--out", str(tmp_path / "r")], ["sql", "SELECT 1"]):
        result = sigwh(wh, *args)
        assert result.exit_code == 1
        assert result.output == expected, args
    assert not (tmp_path / "r").exists()
    # --write still opens it, to repair by hand, with a warning
    result = sigwh(wh, "sql", "SELECT count(*) AS n FROM models", "--write")
    assert result.exit_code == 0, result.output
    assert "is damaged: table clips is missing" in result.output
    assert "Opened anyway for --write, with the file's own views, to repair it." in result.output
