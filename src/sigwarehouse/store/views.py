"""The package's views and table macros (`sql/views/<name>.sql`): creating them in a file,
reading through them instead of the file's, and how the file's differ.

A warehouse stores its views as SQL, and a shared file's views are SQL its author wrote.
So every connection sigwarehouse opens reads through this package's definitions:
`install()` creates them as TEMP views and macros, which DuckDB resolves before the
file's own (temporary objects come first in the search path) and which need no write
access. `differences()` compares the file's stored definitions with the package's, for
`sigwh views --check` (views_check.py) and the warning `sigwh sql` prints. The SQL files
themselves, and their dependency order, are read by sql_files.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError
from sigwarehouse.store import integrity
from sigwarehouse.store.atomic import transaction
from sigwarehouse.store.sql_files import CREATE, ordered_views


def create(con: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re-)create every view and macro in the connection's current database, in one
    transaction; returns their names in creation order."""
    done = []
    todo = ordered_views()
    try:
        with transaction(con):
            for name, text in todo:
                con.execute(text)
                done.append(name)
    except duckdb.Error as exc:
        if len(done) == len(todo):  # every statement ran: the COMMIT failed
            raise WarehouseError(f"creating the views failed: {exc}") from exc
        failed = todo[len(done)][0]
        raise WarehouseError(f"creating view {failed!r} failed: {exc}") from exc
    return done


def temporary(text: str) -> str:
    """The same statement creating a TEMP view or macro."""
    return CREATE.sub(lambda m: f"{m[1]}CREATE OR REPLACE TEMP {m[2].upper()} {m[3]}", text, 1)


def install(con: duckdb.DuckDBPyConnection, path: Path, pending: Iterable[str] = ()) -> list[str]:
    """Create the package's views and macros as TEMP objects on `con`, shadowing the file's.

    Returns the names that cannot be built from this file's tables because it has
    migrations pending (`pending`: their names); each becomes a stub that says to run
    `sigwh migrate`, so the file's own definition is never read in its place. Raises
    WarehouseError when a view fails on a file with no migrations pending.
    """
    pending = list(pending)
    unavailable = []
    for name, text in ordered_views():
        try:
            con.execute(temporary(text))
        except duckdb.Error as exc:
            if not pending:
                raise WarehouseError(f"{path}: view {name} cannot be built: {exc}") from exc
            unavailable.append(name)
            con.execute(_stub(name, text, path, pending))
    return unavailable


STUB_MARK = "is not available: "


def unavailable(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names that install() could not build on this connection (their stubs)."""
    rows = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE database_name = 'temp' AND contains(sql, ?) "
        "UNION SELECT function_name FROM duckdb_functions() WHERE database_name = 'temp' "
        "AND contains(macro_definition, ?) ORDER BY 1",
        [STUB_MARK, STUB_MARK],
    ).fetchall()
    return [name for (name,) in rows]


def _stub(name: str, text: str, path: Path, pending: list[str]) -> str:
    message = (
        f"{name} {STUB_MARK}{path} predates migration {pending[0]}, whose tables it "
        "reads; run `sigwh migrate` on the file (or on a copy of it)"
    ).replace("'", "''")
    match = CREATE.match(text)
    if match[2].upper() == "VIEW":
        return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT error('{message}') AS unavailable"
    params = re.match(r"\s*\(([^)]*)\)", text[match.end() :])
    args = params[1] if params else ""
    return (
        f"CREATE OR REPLACE TEMP MACRO {name}({args}) AS TABLE "
        f"SELECT error('{message}') AS unavailable"
    )


@dataclass(frozen=True)
class Difference:
    """A view or macro whose definition in the file is not the package's."""

    name: str
    status: str  # "differs", "missing" (not in the file), "extra" (only in the file)
    ours: str | None
    theirs: str | None

    def describe(self) -> str:
        return {
            "differs": f"{self.name}: the file's definition differs from sigwarehouse's",
            "missing": f"{self.name}: not in the file (sigwarehouse defines it)",
            "extra": f"{self.name}: only in the file (not sigwarehouse's; sigwh never uses it)",
        }[self.status]


def differences(con: duckdb.DuckDBPyConnection, applied: Iterable[int]) -> list[Difference]:
    """How the views and macros stored in the file differ from the package's (as built on
    the schema of the file's applied migrations); sorted by name."""
    ours = integrity.reference(applied, integrity.storage_version(con)).views
    theirs = integrity.definitions(con)
    out = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a == b:
            continue
        status = "missing" if b is None else "extra" if a is None else "differs"
        out.append(Difference(name, status, a, b))
    return out
