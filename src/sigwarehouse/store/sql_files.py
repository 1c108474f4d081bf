"""The SQL this package ships: `sql/schema/NNNN_name.sql` migrations and
`sql/views/<name>.sql` views and macros, and which migrations a file records as applied.

The bottom of the storage package: it reads files and one table, and imports nothing of
sigwarehouse but its errors, so every layer above (integrity, views, connection) takes
the schema from here and it is written down once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError
from sigwarehouse.shipped import shipped_dir

MIGRATIONS_TABLE = "schema_migrations"

_COMMENT = re.compile(r"--[^\n]*")
CREATE = re.compile(
    r"^((?:\s*--[^\n]*\n)*\s*)CREATE\s+(?:OR\s+REPLACE\s+)?(VIEW|MACRO)\s+(\w+)", re.IGNORECASE
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def stem(self) -> str:
        """How messages name it: "0007_signal_probs_unindexed"."""
        return f"{self.version:04d}_{self.name}"


def sql_dir() -> Path:
    """The sql/ folder: shipped inside the wheel, or the repository's in a source checkout."""
    return shipped_dir("sql")


def read_sql(name: str) -> str:
    """The text of sql/<name>.sql, e.g. read_sql('views/model_accuracy')."""
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        raise WarehouseError(f"no SQL file named {name!r} (looked for {path})")
    return path.read_text()


def migrations() -> list[Migration]:
    """Every migration shipped with this code, in order."""
    found = []
    for path in sorted((sql_dir() / "schema").glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if not match:
            raise WarehouseError(f"{path}: migration files must be named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise WarehouseError(f"two migrations share a number in {sql_dir() / 'schema'}")
    return found


def code_schema_version() -> int:
    return max((m.version for m in migrations()), default=0)


def applied_versions(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Versions recorded in the warehouse (empty for a new file)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [MIGRATIONS_TABLE]
    ).fetchone()[0]
    if not exists:
        return []
    rows = con.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()
    return [v for (v,) in rows]


def view_files() -> list[Path]:
    return sorted((sql_dir() / "views").glob("*.sql"))


def ordered_views() -> list[tuple[str, str]]:
    """(name, SQL) of every view and macro, each after every one whose name it mentions.

    Raises WarehouseError for a cycle, or a file whose statement is not
    `CREATE [OR REPLACE] VIEW|MACRO <its own name>`.
    """
    texts = {}
    for path in view_files():
        text = path.read_text()
        match = CREATE.match(text)
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
