"""Migrations, views and the rules for opening a warehouse, on real DuckDB files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from sigwarehouse import store
from sigwarehouse.store import WarehouseError, sql_files, views


@pytest.fixture
def sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of sql/ that a test may add migrations to."""
    copy = tmp_path / "sql"
    shutil.copytree(store.sql_dir(), copy)
    monkeypatch.setattr(sql_files, "sql_dir", lambda: copy)
    return copy


def test_init_applies_every_migration_in_order(wh_path: Path) -> None:
    con = duckdb.connect(str(wh_path), read_only=True)
    rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    con.close()
    assert rows == [(m.version, m.name) for m in store.migrations()]
    assert [v for v, _ in rows] == sorted(v for v, _ in rows)


def test_migrate_twice_changes_nothing(wh_path: Path) -> None:
    con = store.connect(wh_path)
    assert store.migrate(con) == []
    assert store.pending(con) == []
    con.close()


def test_views_are_recreated_idempotently(wh_path: Path) -> None:
    con = store.connect(wh_path)
    first = views.create(con)
    second = views.create(con)
    con.close()
    assert sorted(first) == sorted(second) == sorted(p.stem for p in store.view_files())


def test_newer_schema_is_refused_and_left_unchanged(wh_path: Path) -> None:
    con = duckdb.connect(str(wh_path))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    con.close()
    before = wh_path.read_bytes()
    with pytest.raises(WarehouseError, match="newer than this sigwarehouse"):
        store.connect(wh_path, read_only=True)
    with pytest.raises(WarehouseError, match="newer"):
        store.init(wh_path)
    assert wh_path.read_bytes() == before


def test_older_schema_is_read_but_migrated_only_on_request(wh_path: Path, sql_copy: Path) -> None:
    (sql_copy / "schema" / "9000_extra.sql").write_text("CREATE TABLE extra (x INTEGER);")
    con = store.connect(wh_path, read_only=True)  # a read works and changes nothing
    assert [m.name for m in store.pending(con)] == ["extra"]
    con.close()
    with pytest.raises(WarehouseError, match="run `sigwh migrate`"), store.opened(wh_path):
        pass
    con = store.connect(wh_path)
    assert [m.name for m in store.migrate(con)] == ["extra"]
    assert con.execute("SELECT count(*) FROM extra").fetchone() == (0,)
    con.close()


def test_a_failing_migration_is_rolled_back_whole(wh_path: Path, sql_copy: Path) -> None:
    (sql_copy / "schema" / "9000_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE oops (x NOT_A_TYPE);"
    )
    con = store.connect(wh_path)
    with pytest.raises(WarehouseError, match="9000_broken.sql failed and was rolled back"):
        store.migrate(con)
    tables = {
        n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert "half_done" not in tables
    assert 9000 not in store.applied_versions(con)
    con.close()


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="sigwh init"):
        store.connect(tmp_path / "absent.duckdb")


def test_connect_waits_for_another_writer_then_gives_a_clear_error(wh_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(wh_path)!r})
                print("holding", flush=True)
                time.sleep(float(sys.argv[1]))
                con.close()
                """
            ),
            "1.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(WarehouseError, match="held by another process"):
        store.connect(wh_path, read_only=True, wait_s=0.2)
    con = store.connect(wh_path, read_only=True, wait_s=30)  # waits until it is released
    assert store.applied_versions(con)
    con.close()
    holder.wait(timeout=30)


def test_sql_files_are_found_by_name() -> None:
    assert "CREATE TABLE clips" in store.read_sql("schema/0001_catalog")
    with pytest.raises(WarehouseError, match="no SQL file named"):
        store.read_sql("views/does_not_exist")
