"""Is this DuckDB file a whole sigwarehouse warehouse? What its tables must look like.

The expected layout is not written down twice: `reference(versions)` applies this
package's migrations (those the file records as applied) to an in-memory database and
reads the tables, columns and view definitions back. A file is then compared with it:
a table or column that is missing, or a table replaced by a view, is damage, and
sigwarehouse refuses to read or write such a file with one message that names what is
missing. Extra tables and columns (a user's own) are left alone.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError
from sigwarehouse.store import sql_files
from sigwarehouse.store.sql_files import MIGRATIONS_TABLE


class DamagedError(WarehouseError):
    """A warehouse with a table or column missing (the message names them)."""


@dataclass(frozen=True)
class Reference:
    """The layout this package's migrations give, and its views' definitions."""

    tables: dict[str, dict[str, str]]  # table -> column -> type
    views: dict[str, str] = field(default_factory=dict)  # name -> normalised definition


def reference(versions: Iterable[int], storage_version: str | None = None) -> Reference:
    """The tables (and view definitions) of a warehouse at these applied migrations.

    View definitions are as DuckDB renders them from a file in `storage_version` (the
    compared file's, see storage_version(); the rendering depends on it).
    """
    wanted = set(versions)
    migrations = tuple(
        (m.version, m.path.read_text()) for m in sql_files.migrations() if m.version in wanted
    )
    return _build(migrations, tuple(sql_files.ordered_views()), storage_version or "latest")


def storage_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The storage version DuckDB reports for the connection's file, e.g. "v1.2.0"."""
    rows = con.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() "
        "WHERE database_name = current_database()"
    ).fetchall()
    return rows[0][0].rstrip("+") if rows and rows[0][0] else None


@functools.lru_cache(maxsize=8)
def _build(
    migrations: tuple[tuple[int, str], ...], ordered: tuple[tuple[str, str], ...], version: str
) -> Reference:
    # Built in a file of the compared file's storage version and read back after
    # reopening: DuckDB renders a view read from storage by what that storage version
    # kept of it (e.g. whether joins were parenthesised).
    with tempfile.TemporaryDirectory(prefix="sigwh-reference-") as tmp:
        path = str(Path(tmp) / "reference.duckdb")
        config = {"enable_external_access": False, "storage_compatibility_version": version}
        con = duckdb.connect(path, config=config)
        try:
            for _, text in migrations:
                con.execute(text)
            for _, text in ordered:
                try:
                    con.execute(text)
                except duckdb.Error:
                    continue  # needs tables of a later migration: not part of this layout
        finally:
            con.close()
        con = duckdb.connect(path, read_only=True, config={"enable_external_access": False})
        try:
            return Reference(tables=columns(con), views=definitions(con))
        finally:
            con.close()


def columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """table -> column -> type for the base tables of the connection's own database."""
    rows = con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_catalog = current_database() "
        "AND c.table_schema = 'main' ORDER BY c.table_name, c.ordinal_position"
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, {})[column] = dtype
    return out


def relation_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """name -> 'BASE TABLE' or 'VIEW' for the relations of the connection's own database."""
    rows = con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main'"
    ).fetchall()
    return dict(rows)


def definitions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """name -> normalised definition of every view and macro stored in the connection's
    own database (not temporary ones): what `sigwh views --check` compares."""
    rows = con.execute(
        "SELECT view_name, sql FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL "
        "SELECT function_name, function_type || '(' || array_to_string(parameters, ', ') "
        "|| ') ' || macro_definition FROM duckdb_functions() "
        "WHERE database_name = current_database() AND function_type IN ('macro', 'table_macro')"
    ).fetchall()
    return {name: " ".join(text.split()).rstrip(";") for name, text in rows}


def problems(con: duckdb.DuckDBPyConnection, applied: Iterable[int]) -> list[str]:
    """What is missing or wrong in the file compared with its applied migrations' layout:
    one phrase per problem, e.g. "table clips is missing"; empty when the file is whole."""
    expected = reference(applied).tables
    present = columns(con)
    kinds = relation_types(con)
    found = []
    for table, cols in expected.items():
        if table not in present:
            is_view = kinds.get(table) == "VIEW"
            found.append(f"table {table} is {'a view' if is_view else 'missing'}")
            continue
        missing = [c for c in cols if c not in present[table]]
        if missing:
            found.append(f"table {table} lacks column(s) {', '.join(missing)}")
        changed = [
            f"{table}.{c} is {present[table][c]} (expected {t})"
            for c, t in cols.items()
            if c in present[table] and present[table][c] != t
        ]
        found += changed
    return found


def check_file(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> list[int]:
    """Refuse a file that is not a sigwarehouse warehouse or is damaged; returns the
    migration versions it records (empty for an empty file, which only a writer accepts,
    to initialise it)."""
    kinds = relation_types(con)
    if MIGRATIONS_TABLE not in kinds:
        ours = set(reference(m.version for m in sql_files.migrations()).tables)
        tables = sorted(kinds)
        if tables and len(ours & set(tables)) * 2 >= len(ours):
            raise WarehouseError(
                f"{path} is damaged: table {MIGRATIONS_TABLE} is missing, so its schema "
                "version is unknown; restore the file from a backup or a copy"
            )
        if tables:
            shown = ", ".join(tables[:6]) + (", …" if len(tables) > 6 else "")
            raise WarehouseError(
                f"{path} is a DuckDB database of another application, not a sigwarehouse "
                f"warehouse (no {MIGRATIONS_TABLE} table; it holds {shown}); sigwarehouse "
                "leaves it alone: point --warehouse at a warehouse, or create one at a new "
                "path with `sigwh init`"
            )
        if read_only:
            raise WarehouseError(
                f"{path} is an empty DuckDB database, not yet a warehouse; "
                "make it one with `sigwh init`"
            )
        return []
    return sql_files.applied_versions(con)


def require_whole(con: duckdb.DuckDBPyConnection, path: Path, applied: Iterable[int]) -> None:
    """Raise WarehouseError naming every missing table and column, and what to do."""
    found = problems(con, applied)
    if found:
        raise DamagedError(
            f"{path} is damaged: {'; '.join(found)}. sigwarehouse neither reads nor writes "
            "it: restore the file from a backup or a colleague's copy, or rebuild it from "
            "an export with DuckDB's IMPORT DATABASE (see `sigwh export --help`)"
        )
