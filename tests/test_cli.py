"""The command line as a user meets it: help everywhere, the query layer, no torch at start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import polars as pl
import typer
from typer.testing import CliRunner

from sigwarehouse.cli import app


def _all_commands(group: click.Command, prefix: tuple[str, ...] = ()):
    yield prefix, group
    # Typer's groups are not click.Group instances (typer vendors click): walk `commands`
    for name, sub in getattr(group, "commands", {}).items():
        yield from _all_commands(sub, (*prefix, name))


def test_every_command_has_help_text() -> None:
    root = typer.main.get_command(app)
    missing = [" ".join(path) for path, cmd in _all_commands(root) if path and not cmd.help]
    assert missing == []


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from sigwarehouse.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_init_info_and_migrate_list(cli, wh_path: Path) -> None:
    assert "schema" in cli("init").output
    assert "0001_catalog" in cli("migrate", "--list").output
    info = cli("info").output
    assert "rows per table" in info and "clips" in info


def test_sql_formats(cli, wh_path: Path, tmp_path: Path) -> None:
    query = "SELECT 1 AS one, 'a' AS letter UNION ALL SELECT 2, 'b' ORDER BY one"
    assert "letter" in cli("sql", query).output
    assert cli("sql", query, "--format", "csv").output.splitlines()[:3] == [
        "one,letter",
        "1,a",
        "2,b",
    ]
    assert json.loads(cli("sql", query, "--format", "json").output) == [
        {"one": 1, "letter": "a"},
        {"one": 2, "letter": "b"},
    ]
    out = tmp_path / "result.parquet"
    cli("sql", query, "--format", "parquet", "--out", str(out))
    assert pl.read_parquet(out)["one"].to_list() == [1, 2]
    assert "needs --out" in cli("sql", query, "--format", "parquet", expect=1).output


def test_sql_is_read_only_by_default(cli, wh_path: Path) -> None:
    before = wh_path.read_bytes()
    result = cli("sql", "CREATE TABLE sneaky (x INTEGER)", expect=1)
    assert "read-only" in result.output
    assert wh_path.read_bytes() == before
    cli("sql", "--write", "CREATE TABLE allowed (x INTEGER)")
    con = duckdb.connect(str(wh_path), read_only=True)
    assert con.execute("SELECT count(*) FROM allowed").fetchone() == (0,)
    con.close()


def test_sql_errors_are_one_clear_line(cli) -> None:
    result = cli("sql", "SELEC 1", expect=1)
    assert result.output.startswith("error: SQL error")


def test_missing_warehouse_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--warehouse", str(tmp_path / "no.duckdb"), "info"])
    assert result.exit_code == 1
    assert "sigwh init" in result.output


def test_export_writes_every_table_as_parquet(cli, wh_path: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(wh_path))
    con.execute("INSERT INTO tasks VALUES ('t', ['a', 'b'], 16000, 0.5, NULL)")
    tables = [n for (n,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    con.close()
    out = tmp_path / "export"
    assert "wrote" in cli("export", "--parquet", str(out)).output
    assert sorted(p.stem for p in out.glob("*.parquet")) == sorted(tables)
    assert pl.read_parquet(out / "tasks.parquet")["labels"].to_list() == [["a", "b"]]
    assert "not empty" in cli("export", "--parquet", str(out), expect=1).output


def test_readme_lists_every_command() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    root = typer.main.get_command(app)
    missing = [name for name in root.commands if f"sigwh {name}" not in readme]
    assert missing == []
