"""The warehouse file on disk: DuckDB's header, and the storage version it is written in.

A DuckDB 2.x library writes, by default, files that no DuckDB 1.x reader opens
("Trying to read a database file with version number …"). Colleagues read shared files
with their own DuckDB CLI, R or Python package, so sigwarehouse creates every warehouse
in STORAGE_VERSION; DuckDB keeps a file in the storage version it was created with, so
later writes by 2.x keep it readable. convert.py rewrites an existing file in another
storage version.

The checks here are what lets a damaged file get a clear message instead of a DuckDB
error deep inside a query: the file starts with DuckDB's magic bytes, and it reaches
the last block its tables use (a truncated copy does not). The header's block count is
no measure of length: DuckDB cuts free blocks off the end of a file without lowering it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse.errors import WarehouseError

# The storage version new warehouses are written in: DuckDB 1.2 and every later release
# opens it (checked by tests/test_sharing.py with the stock DuckDB CLI).
STORAGE_VERSION = "v1.2.0"
# DuckDB's storage number in the file header -> the oldest DuckDB release that reads it.
# (2.x writes a number outside this table when no storage version is asked for.)
OLDEST_READER = {64: "1.1", 65: "1.2", 66: "1.3", 67: "1.4", 68: "1.5"}
STORAGE_NUMBERS = {"v1.1.0": 64, "v1.2.0": 65, "v1.3.0": 66, "v1.4.0": 67, "v1.5.0": 68}

_MAGIC = b"DUCK"
_HEADER = 4096  # the main header, then two database headers, then the blocks
_FIRST_BLOCK = 3 * _HEADER


@dataclass(frozen=True)
class FileHeader:
    """What a DuckDB file's header says: its storage number."""

    storage_number: int
    size: int

    @property
    def oldest_reader(self) -> str | None:
        """The oldest DuckDB release that opens the file ("1.2"), None if not a 1.x one."""
        return OLDEST_READER.get(self.storage_number)

    def describe(self) -> str:
        reader = self.oldest_reader
        if reader is None:
            return f"storage {self.storage_number} (DuckDB 2.x readers only)"
        return f"storage {self.storage_number} (DuckDB {reader} or newer reads it)"


def held_in_this_process(path: Path) -> bool:
    """Whether this process already has the file open (as DuckDB does while a connection
    holds it), in which case Python must not open it.

    DuckDB locks the file with POSIX record locks, which belong to the process and are
    all dropped when the process closes *any* descriptor of the file: reading the file
    with open()/close() beside a live connection silently releases DuckDB's lock, and
    another process can then write the file at the same time (two ingest jobs lost a
    run that way). Where /proc is not there to ask, it answers True: skip the read.
    """
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return True
    target = os.path.realpath(path)
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def check_magic(path: Path) -> None:
    """Refuse a file that is not a DuckDB database (raises WarehouseError naming it).

    Reads only the first bytes, so it is safe on any file; does nothing while this
    process holds the file (see held_in_this_process): it was checked when first opened.
    """
    if held_in_this_process(path):
        return
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER)
    except OSError as exc:
        raise WarehouseError(f"cannot read {path}: {exc.strerror}") from exc
    if len(head) < 12 or head[8:12] != _MAGIC:
        what = "an empty file" if not head else f"a file of {path.stat().st_size:,} bytes"
        raise WarehouseError(
            f"{path} is not a DuckDB database ({what} without DuckDB's header); "
            "point --warehouse at a sigwarehouse file, or create one with `sigwh init`"
        )
    if len(head) < _HEADER:
        raise WarehouseError(truncated_message(path, len(head), None))


def read_header(path: Path) -> FileHeader | None:
    """The header of the DuckDB file at `path`; raises WarehouseError when it is not one
    or is cut off inside its headers. None while this process holds the file (reading it
    then would drop DuckDB's lock: see held_in_this_process)."""
    if held_in_this_process(path):
        return None
    check_magic(path)
    with open(path, "rb") as f:
        head = f.read(_FIRST_BLOCK)
    if len(head) < _FIRST_BLOCK:
        raise WarehouseError(truncated_message(path, len(head), None))
    (number,) = struct.unpack_from("<Q", head, 12)
    return FileHeader(number, path.stat().st_size)


def required_size(con: duckdb.DuckDBPyConnection) -> int | None:
    """The least length of the connection's file: up to the last block its tables use
    (from DuckDB's storage metadata, read without reading the blocks), None if none."""
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_catalog = current_database() AND table_schema = 'main'"
    ).fetchall()
    last = -1
    for (table,) in tables:
        (used,) = con.execute(
            "SELECT max(block_id) FROM pragma_storage_info(?)", [f'"{table}"']
        ).fetchall()[0]
        last = max(last, used if used is not None else -1)
    if last < 0:
        return None
    (block_size,) = con.execute(
        "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()"
    ).fetchall()[0]
    return _FIRST_BLOCK + (last + 1) * block_size


def check_length(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a file shorter than the blocks its tables use (a truncated copy)."""
    need = required_size(con)
    size = path.stat().st_size
    if need is not None and size < need:
        raise WarehouseError(truncated_message(path, size, need))


def truncated_message(path: Path, size: int, expected: int | None) -> str:
    says = f"; its tables use {expected:,}" if expected else ""
    return (
        f"{path} is truncated ({size:,} bytes{says}): it was probably copied incompletely; "
        "copy it again from its source, or restore it from a backup"
    )
