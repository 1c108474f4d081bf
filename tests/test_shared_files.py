"""A shared warehouse is data, never code: attacks a colleague's file could carry, and
damaged files, each run through the commands a new user would try.

Each attack test writes the file the way its author could (plain DuckDB, no
sigwarehouse), then asserts what sigwarehouse prints and that nothing leaked or was
written.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sharing import copy_of, digest, rounded, sigwh, view_queries

from sigwarehouse import store
from sigwarehouse.analyses import build_report
from sigwarehouse.store import sql_files

SECRET = "s3cr3t-on-the-readers-machine"


@pytest.fixture(scope="module")
def filled(small_filled, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(small_filled[0], tmp_path_factory.mktemp("filled"))


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "notes.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def _tamper(path: Path, secret: Path) -> None:
    """What a malicious author does: model_accuracy reads a file of the reader's, and an
    extra view does too (the issue's attack, with a file of the test's own)."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE OR REPLACE VIEW model_accuracy AS SELECT 't' AS task, 'd' AS dataset, "
        f"content AS model, 1 AS n_clips, 1.0 AS accuracy FROM read_text('{secret}')"
    )
    con.execute(f"CREATE OR REPLACE VIEW leak AS SELECT content FROM read_text('{secret}')")
    con.close()


# --- 17.1 and 17.2: views stored in the file neither read files nor decide a number ------


def test_a_view_reading_the_readers_files_leaks_nothing_through_sql(
    filled: Path, tmp_path: Path, secret_file: Path
) -> None:
    path = copy_of(filled, tmp_path / "shared")
    _tamper(path, secret_file)
    before = digest(path.parent)

    result = sigwh(path, "sql", "SELECT model, accuracy FROM model_accuracy ORDER BY model")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    # sigwarehouse's own view answered: the models of the small warehouse, not the file
    assert "m1" in result.output and "s3" in result.output
    assert "1 view(s) stored in" in result.output and "(model_accuracy)" in result.output

    # The file's own view, asked for by name, cannot read the file.
    result = sigwh(path, "sql", "SELECT * FROM leak")
    assert result.exit_code == 1
    assert SECRET not in result.output
    assert result.output.splitlines()[-1].startswith(
        "error: SELECT reads a file or the network, which the warehouse's SQL may not: "
        'Permission Error: Cannot access file "'
    )
    assert "--allow-files" in result.output and "Traceback" not in result.output
    shadowed = sigwh(path, "sql", "SELECT content FROM warehouse.main.model_accuracy")
    assert shadowed.exit_code == 1 and SECRET not in shadowed.output
    assert digest(path.parent) == before


def test_allow_files_is_the_users_own_choice(
    filled: Path, tmp_path: Path, secret_file: Path
) -> None:
    path = copy_of(filled, tmp_path / "mine")
    result = sigwh(path, "sql", f"SELECT content FROM read_text('{secret_file}')")
    assert result.exit_code == 1 and SECRET not in result.output
    result = sigwh(path, "sql", f"SELECT content FROM read_text('{secret_file}')", "--allow-files")
    assert result.exit_code == 0 and SECRET in result.output


def test_a_report_built_from_a_tampered_file_holds_our_numbers_only(
    filled: Path, tmp_path: Path, secret_file: Path
) -> None:
    path = copy_of(filled, tmp_path / "shared")
    clean = build_report(filled, tmp_path / "clean", chart_files=False)
    _tamper(path, secret_file)
    tampered = build_report(path, tmp_path / "tampered", chart_files=False)
    for out in (tmp_path / "tampered").rglob("*"):
        if out.is_file():
            assert SECRET.encode() not in out.read_bytes(), out
    # Every table the report wrote is the one the untampered file gives.
    tables = sorted(p.name for p in (tmp_path / "clean" / "tables").iterdir())
    assert tables == sorted(p.name for p in (tmp_path / "tampered" / "tables").iterdir())
    assert any(name.startswith("accuracy") for name in tables), tables
    for name in tables:
        a = pl.read_csv(tmp_path / "clean" / "tables" / name)
        b = pl.read_csv(tmp_path / "tampered" / "tables" / name)
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9)
    assert tampered.sections == clean.sections


def test_analyses_and_info_read_the_packages_views(filled: Path, tmp_path: Path) -> None:
    """A view changed in the file (an 'outdated' definition) does not change a number."""
    path = copy_of(filled, tmp_path / "old")
    con = duckdb.connect(str(path))
    con.execute("CREATE OR REPLACE VIEW model_accuracy AS SELECT 'x' AS task, 'd' AS dataset, "
                "'m1' AS model, 1 AS n_clips, 0.123 AS accuracy")  # fmt: skip
    con.close()
    with store.opened(filled, read_only=True) as con:
        queries = view_queries(con)
        expected = {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()}
    with store.opened(path, read_only=True) as con:
        got = {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()}
    assert got == expected
    assert set(expected) == {p.stem for p in store.view_files()}


def test_views_check_lists_each_difference(filled: Path, tmp_path: Path, secret_file) -> None:
    result = sigwh(filled, "views", "--check")
    assert result.exit_code == 0, result.output
    names = [name for name, _ in sql_files.ordered_views()]
    for name in names:
        assert f"  {name:<28} same" in result.output

    path = copy_of(filled, tmp_path / "shared")
    _tamper(path, secret_file)
    con = duckdb.connect(str(path))
    con.execute(f"DROP {'MACRO TABLE' if 'beta_transferability' in names else 'VIEW'} "
                "beta_transferability")  # fmt: skip
    con.close()
    result = sigwh(path, "views", "--check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "  model_accuracy               differs" in lines
    assert "  beta_transferability         missing" in lines
    assert "  leak                         only in the file (never used by sigwh)" in lines
    assert any(line.startswith("  the file:") and "read_text" in line for line in lines)
    assert lines[-1] == "2 view(s) differ from sigwarehouse's; `sigwh migrate` replaces them"
    # migrate puts the package's definitions back
    assert sigwh(path, "migrate").exit_code == 0
    assert "differs" not in sigwh(path, "views", "--check").output


# --- 17.4: malformed files give one clear error, and nothing is written ---------------


def _truncated(filled: Path, folder: Path) -> Path:
    data = filled.read_bytes()
    path = folder / "warehouse.duckdb"
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(filled: Path, folder: Path) -> Path:
    path = folder / "warehouse.duckdb"
    path.write_bytes(os.urandom(300_000))
    return path


def _other_application(filled: Path, folder: Path) -> Path:
    path = folder / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.execute("CREATE TABLE orders (id INTEGER, customer INTEGER, total DECIMAL(9, 2))")
    con.execute("INSERT INTO customers VALUES (1, 'Ada')")
    con.close()
    return path


def _dropped_table(filled: Path, folder: Path) -> Path:
    path = copy_of(filled, folder)
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE original_probs")
    con.close()
    return path


def _dropped_column(filled: Path, folder: Path) -> Path:
    path = copy_of(filled, folder)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE models DROP COLUMN backbone")
    con.close()
    return path


MALFORMED = {
    "truncated": (_truncated, "is truncated ("),
    "random bytes": (_random_bytes, "is not a DuckDB database (a file of 300,000 bytes"),
    "another application's file": (
        _other_application,
        "is a DuckDB database of another application, not a sigwarehouse warehouse",
    ),  # fmt: skip
    "dropped table": (_dropped_table, "is damaged: table original_probs is missing"),
    "dropped column": (_dropped_column, "is damaged: table models lacks column(s) backbone"),
}
COMMANDS = {
    "sql": ["sql", "SELECT * FROM model_accuracy"],
    "info": ["info"],
    "report": ["report", "--out", "{out}"],
    "ingest --dry-run": ["ingest", "--model", "m1", "--dry-run"],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_file_gives_one_clear_error_and_nothing_is_written(
    filled: Path, tmp_path: Path, case: str
) -> None:
    make, problem = MALFORMED[case]
    folder = tmp_path / "shared"
    folder.mkdir()
    path = make(filled, folder)
    before = digest(folder)
    for command, args in COMMANDS.items():
        out = tmp_path / f"report-{command.split()[0]}"
        result = sigwh(path, *[a.format(out=out) for a in args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1, (command, result.output)
        assert len(lines) == 1, (command, result.output)
        assert lines[0].startswith(f"error: {path} "), (command, lines[0])
        assert problem in lines[0], (command, lines[0])
        assert "Traceback" not in result.output
        assert not out.exists()
        assert digest(folder) == before, command  # no byte changed, no file (e.g. .wal) added


def test_every_message_says_what_to_do(filled: Path, tmp_path: Path) -> None:
    advice = {
        "truncated": "copy it again from its source, or restore it from a backup",
        "random bytes": "point --warehouse at a sigwarehouse file, or create one with `sigwh init`",
        "another application's file": "sigwarehouse leaves it alone",
        "dropped table": "restore the file from a backup or a colleague's copy",
        "dropped column": "restore the file from a backup or a colleague's copy",
    }
    for i, (case, (make, _)) in enumerate(MALFORMED.items()):
        folder = tmp_path / str(i)
        folder.mkdir()
        result = sigwh(make(filled, folder), "info")
        assert advice[case] in result.output, (case, result.output)


def test_the_intact_file_passes_the_same_commands(filled: Path, tmp_path: Path) -> None:
    path = copy_of(filled, tmp_path / "ok")
    for command, args in COMMANDS.items():
        if command == "report":
            continue  # built in the tampered-report test above
        result = sigwh(path, *args)
        if command == "ingest --dry-run":  # the file reads; then the dry run loads m1,
            # whose checkpoint this hand-made file only names: it fails as the job would
            assert result.exit_code == 1 and "model m1 (task t" in result.output
            assert (
                result.output.strip()
                .splitlines()[-1]
                .startswith("error: model m1 (zoo x) could not be loaded")
            ), result.output
            continue
        assert result.exit_code == 0, (command, result.output)


def test_a_file_cut_inside_its_header_and_an_empty_duckdb_file(tmp_path: Path) -> None:
    cut = tmp_path / "cut.duckdb"
    duckdb.connect(str(cut)).close()
    cut.write_bytes(cut.read_bytes()[:100])
    result = sigwh(cut, "info")
    assert result.exit_code == 1
    assert f"error: {cut} is truncated (100 bytes)" in result.output

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    result = sigwh(empty, "info")
    assert result.exit_code == 1
    assert "is an empty DuckDB database, not yet a warehouse; make it one with `sigwh init`" in (
        result.output
    )
    assert sigwh(empty, "init").exit_code == 0  # a writer may initialise it
    assert sigwh(empty, "info").exit_code == 0


# --- a file older than the package's views --------------------------------------------


def test_a_view_needing_a_pending_migration_says_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file predates a migration a package view reads: that view is neither built nor
    taken from the file; sql and report say to migrate, other views still work."""
    import shutil

    path, _ = store.init(tmp_path / "old" / "warehouse.duckdb")
    con = duckdb.connect(str(path))  # the file's own, older definition of the new view
    con.execute("CREATE VIEW extra_view AS SELECT 'the file''s' AS x")
    con.close()
    copy = tmp_path / "sql"
    shutil.copytree(store.sql_dir(), copy)
    monkeypatch.setattr(sql_files, "sql_dir", lambda: copy)
    (copy / "schema" / "9000_extra.sql").write_text("CREATE TABLE extra (x INTEGER);")
    (copy / "views" / "extra_view.sql").write_text(
        "CREATE OR REPLACE VIEW extra_view AS SELECT x FROM extra;"
    )
    result = sigwh(path, "sql", "SELECT * FROM extra_view")
    assert result.exit_code == 1
    assert (
        f"extra_view is not available: {path} predates migration 9000_extra, whose tables "
        "it reads; run `sigwh migrate` on the file (or on a copy of it)"
    ) in result.output
    assert "the file's" not in result.output
    assert sigwh(path, "sql", "SELECT count(*) FROM model_accuracy").exit_code == 0
    result = sigwh(path, "report", "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.output == (
        f"error: {path} has migrations pending, and the report needs views that read their "
        "tables (extra_view): run `sigwh migrate` on it (or on a copy) first\n"
    )
    assert sigwh(path, "migrate").exit_code == 0
    assert sigwh(path, "sql", "SELECT * FROM extra_view").exit_code == 0
