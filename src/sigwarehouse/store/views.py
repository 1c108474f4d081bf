"""The package's views and table macros (`sql/views/<name>.sql`): their dependency order,
creating them in a file, and reading through them instead of the file's.

A warehouse stores its views as SQL, and a shared file's views are SQL its author wrote.
So every connection sigwarehouse opens reads through this package's definitions:
`install()` creates them as TEMP views and macros, which DuckDB resolves before the
file's own (temporary objects come first in the search path) and which need no write
access. `differences()` compares the file's stored definitions with the package's, for
`sigwh views --check` and the warning `sigwh sql` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError

_COMMENT = re.compile(r"--[^\n]*")
_CREATE = re.compile(
    r"^((?:\s*--[^\n]*\n)*\s*)CREATE\s+(?:OR\s+REPLACE\s+)?(VIEW|MACRO)\s+(\w+)", re.IGNORECASE
)


def files() -> list[Path]:
    from sigwarehouse import warehouse

    return warehouse.view_files()


def ordered() -> list[tuple[str, str]]:
    """(name, SQL) of every view and macro, each after every one whose name it mentions.

    Raises WarehouseError for a cycle, or a file whose statement is not
    `CREATE [OR REPLACE] VIEW|MACRO <its own name>`.
    """
    texts = {}
    for path in files():
        text = path.read_text()
        match = _CREATE.match(text)
        if not match or match[3] != path.stem:
            raise WarehouseError(
                f"{path}: expected `CREATE OR REPLACE VIEW|MACRO {path.stem} …` (one object "
                "per file, named after it)"
            )
        texts[path.stem] = text
    # What a statement uses is read from its SQL without comments, so a comment may name
    # the views built on top of it (the rule a view states often does).
    code = {name: _COMMENT.sub("", text) for name, text in texts.items()}
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in trail:
            raise WarehouseError(f"views refer to each other in a cycle: {' -> '.join(trail)}")
        for other in texts:
            if other != name and re.search(rf"\b{other}\b", code[name]):
                visit(other, (*trail, name))
        order.append(name)

    for name in sorted(texts):
        visit(name, ())
    return [(name, texts[name]) for name in order]


def create(con: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re-)create every view and macro in the connection's current database, in one
    transaction; returns their names in creation order."""
    from sigwarehouse.warehouse import transaction

    done = []
    todo = ordered()
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
    return _CREATE.sub(lambda m: f"{m[1]}CREATE OR REPLACE TEMP {m[2].upper()} {m[3]}", text, 1)


def install(con: duckdb.DuckDBPyConnection, path: Path, pending: Iterable[str] = ()) -> list[str]:
    """Create the package's views and macros as TEMP objects on `con`, shadowing the file's.

    Returns the names that cannot be built from this file's tables because it has
    migrations pending (`pending`: their names); each becomes a stub that says to run
    `sigwh migrate`, so the file's own definition is never read in its place. Raises
    WarehouseError when a view fails on a file with no migrations pending.
    """
    pending = list(pending)
    unavailable = []
    for name, text in ordered():
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
    match = _CREATE.match(text)
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
    from sigwarehouse import integrity

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


def check(path: Path) -> tuple[str, int]:
    """A listing of the package's views and macros with how the file's stored definition
    compares (same, differs, missing), then any view only the file has; and the number
    of views that differ or are missing. Opens the warehouse read-only."""
    from sigwarehouse import warehouse

    con = warehouse.connect(path, read_only=True)
    try:
        applied = warehouse.applied_versions(con)
        found = {d.name: d for d in differences(con, applied)}
    finally:
        con.close()
    lines = [f"views and macros of {path} (sigwh reads sigwarehouse's definitions):"]
    for name, _ in ordered():
        diff = found.get(name)
        lines.append(f"  {name:<28} {'same' if diff is None else diff.status}")
    extra = [d for d in found.values() if d.status == "extra"]
    lines += [f"  {d.name:<28} only in the file (never used by sigwh)" for d in extra]
    differ = [d for d in found.values() if d.status == "differs"]
    for d in differ:
        lines += ["", f"{d.name}:", f"  sigwarehouse: {d.ours}", f"  the file:     {d.theirs}"]
    n = sum(d.status != "extra" for d in found.values())
    if n:
        lines += ["", f"{n} view(s) differ from sigwarehouse's; `sigwh migrate` replaces them"]
    return "\n".join(lines), n
