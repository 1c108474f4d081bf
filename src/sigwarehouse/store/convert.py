"""`sigwh convert`: rewrite a warehouse in another DuckDB storage version.

Maintenance, above the connection: the file is opened (and checked) as any warehouse,
copied with COPY FROM DATABASE into a new file of the storage version asked for, its
views replaced by this package's, and its row counts compared before the copy takes the
original's place (file_format.py says why the storage version matters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError
from sigwarehouse.store import connection, views
from sigwarehouse.store.file_format import STORAGE_NUMBERS, STORAGE_VERSION, FileHeader, read_header


@dataclass
class ConvertResult:
    path: Path  # the converted warehouse
    backup: Path | None  # the original, when converted in place
    storage: FileHeader
    tables: int
    rows: int

    def describe(self) -> str:
        kept = f"; the original is kept as {self.backup}" if self.backup else ""
        return (
            f"{self.path}: {self.storage.describe()}, {self.tables} tables, "
            f"{self.rows:,} rows copied{kept}"
        )


def convert(path: Path, version: str = STORAGE_VERSION, out: Path | None = None) -> ConvertResult:
    """Rewrite the warehouse at `path` in storage `version` (e.g. "v1.2.0").

    Writes `out`, or, without `out`, replaces `path` and keeps the original as
    `<path>.bak` (byte for byte). The copy's views are this sigwarehouse's definitions;
    every table's row count is compared before the copy takes the original's place. Refuses an
    unknown version, an existing `out` or backup, a file that is not a warehouse, and
    one with migrations pending (run `sigwh migrate` first).
    """
    if version not in STORAGE_NUMBERS:
        raise WarehouseError(
            f"unknown storage version {version!r}; choose one of {', '.join(STORAGE_NUMBERS)}"
        )
    path = Path(path)
    backup = None if out is not None else path.with_name(path.name + ".bak")
    target = Path(out) if out is not None else path.with_name(path.name + ".converting")
    for taken in (out, backup):
        if taken is not None and taken.exists():
            raise WarehouseError(f"{taken} exists; move it away or choose another --out")
    con = connection.connect(path, read_only=True, package_views=False)
    try:
        connection.require_current(con, path)
        before = connection.table_counts(con)
    finally:
        con.close()
    for stale in (target, target.with_name(target.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        _copy(path, target, version)
        con = connection.connect(target, read_only=True, package_views=False)
        try:
            after = connection.table_counts(con)
        finally:
            con.close()
        if after != before:
            raise WarehouseError(
                f"converting {path} changed row counts ({before} -> {after}); nothing replaced"
            )
    except BaseException:
        for left in (target, target.with_name(target.name + ".wal")):
            left.unlink(missing_ok=True)
        raise
    if backup is not None:
        os.replace(path, backup)
        log = path.with_name(path.name + ".wal")  # left by a writer that did not close
        if log.exists():
            os.replace(log, backup.with_name(backup.name + ".wal"))
        os.replace(target, path)
    result_path = path if backup is not None else target
    return ConvertResult(
        result_path, backup, read_header(result_path), len(after), sum(n for _, n in after)
    )


def _copy(source: Path, target: Path, version: str) -> None:
    """COPY FROM DATABASE source (tables, sequences, views) into a new file in `version`,
    then replace its views and macros with this package's."""
    con = duckdb.connect(":memory:")
    try:
        # Only the two files' folders are reachable (DuckDB keeps its logs beside each
        # file), so a view stored in the source cannot read anything else while copied.
        folders = sorted({str(f.resolve().parent) + os.sep for f in (source, target)})
        con.execute("SET allowed_directories = ?", [folders])
        con.execute("SET enable_external_access = false")
        con.execute(f"ATTACH {_quote(source)} AS src (READ_ONLY)")
        con.execute(f"ATTACH {_quote(target)} AS dst (STORAGE_VERSION '{version}')")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("USE dst")
        views.create(con)
        con.execute("CHECKPOINT dst")
    except duckdb.Error as exc:
        raise WarehouseError(f"converting {source} failed: {exc}") from exc
    finally:
        con.close()


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
