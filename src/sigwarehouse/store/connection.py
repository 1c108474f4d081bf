"""Open a warehouse file, apply its ordered migrations, re-create its views.

The top of the storage package. The schema lives in `sql/schema/NNNN_name.sql`, applied
in order, each in its own transaction and recorded in `schema_migrations`. Views and
table macros live in `sql/views/<name>.sql`, one per file, and are re-created after
every migration (sql_files.py reads both).

Reads never change a file: an older warehouse is migrated only by `migrate()`
(`sigwh migrate` or `sigwh init`), and a warehouse newer than this code is refused.

DuckDB lets one process write a file at a time, and a read-only process cannot open a
file another process is writing. So every command holds the file only briefly, and
`connect()` waits (with back-off) while another process holds the lock.

A warehouse may come from someone else, so `connect()` also checks what it opens (a
DuckDB file, whole, of sigwarehouse: file_format.py, integrity.py), reads with DuckDB's
external access off, and puts this package's views in front of the file's (views.py).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from sigwarehouse import __version__
from sigwarehouse.errors import WarehouseError
from sigwarehouse.store import file_format, integrity, io_errors, sql_files, views
from sigwarehouse.store.atomic import transaction
from sigwarehouse.store.sql_files import MIGRATIONS_TABLE, Migration

DEFAULT_WAREHOUSE = "warehouse.duckdb"


def default_path() -> Path:
    """The warehouse path: $SIGWH_WAREHOUSE, else ./warehouse.duckdb."""
    return Path(os.environ.get("SIGWH_WAREHOUSE", DEFAULT_WAREHOUSE))


def _check_not_newer(applied: list[int], path: Path) -> list[int]:
    known = {m.version for m in sql_files.migrations()}
    unknown = [v for v in applied if v not in known]
    if unknown:
        raise WarehouseError(
            f"{path} has schema version {max(applied)}, newer than this sigwarehouse "
            f"({__version__}, schema {sql_files.code_schema_version()}); "
            "upgrade sigwarehouse to open it"
        )
    return applied


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def connect(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    must_exist: bool = True,
    wait_s: float = 60.0,
    external_access: bool | None = None,
    package_views: bool = True,
    allow_damaged: bool = False,
    settings: dict[str, str] | None = None,
    check_length: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open a warehouse file and check that this code can read it.

    Waits up to wait_s while another process holds the file's write lock. Refuses (with
    WarehouseError naming the file and the problem) a missing file when must_exist, a
    file that is not a DuckDB database or is truncated, another application's DuckDB
    file, a warehouse whose schema is newer than this code, and a damaged one (a table
    or column missing; allow_damaged skips this check, for a user repairing it by hand).
    A new file is created in file_format.STORAGE_VERSION, which DuckDB 1.x readers open.

    Shared files hold SQL their authors wrote, so by default a read-only connection runs
    with DuckDB's external access disabled (views cannot read other files or the
    network; `external_access` overrides), and with package_views every view and macro
    is this package's definition, as TEMP objects shadowing the file's (see views.py).
    `settings` are DuckDB settings given as it opens the file (e.g. memory_limit and
    temp_directory, which cannot be set later with external access disabled).
    check_length=False skips the truncation check (seconds at 10^8 rows: it lists every
    column segment), for a caller that compares the file's size and time with a reading
    taken when the file was whole, as `sigwh report --if-changed` does.
    Never migrates: see migrate().
    """
    path = Path(path) if path is not None else default_path()
    exists = path.exists()
    if must_exist and not exists:
        raise WarehouseError(f"no warehouse at {path}; create one with `sigwh init`")
    if exists:  # read before DuckDB holds the file: see file_format.held_in_this_process
        file_format.read_header(path)
    config: dict[str, object] = {}
    if not (not read_only if external_access is None else external_access):
        config["enable_external_access"] = False
    if not exists:
        config["storage_compatibility_version"] = file_format.STORAGE_VERSION
    # after enable_external_access: DuckDB refuses a temp_directory given before it
    config.update(settings or {})
    con = _open(path, read_only, config, wait_s)
    try:
        if exists and check_length:  # the file is held: its length is final (stat: no fd)
            file_format.check_length(con, path)
        applied = integrity.check_file(con, path, read_only)
        _check_not_newer(applied, path)
        if applied and not allow_damaged:
            integrity.require_whole(con, path, applied)
        if package_views and applied:
            todo = [m.stem for m in sql_files.migrations() if m.version not in applied]
            views.install(con, path, todo)
    except duckdb.Error as exc:
        con.close()
        _raise_if_write_failed(path, exc)
        raise WarehouseError(
            f"{path} cannot be read: {_first_line(exc)}; the file may be damaged: restore "
            "it from a backup or a copy"
        ) from exc
    except Exception:
        con.close()
        raise
    return con


def _open(path: Path, read_only: bool, config: dict, wait_s: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting with back-off while another process holds the file, in
    turn with the other processes opening it (_turn)."""
    deadline = time.monotonic() + wait_s
    if not read_only:  # most writers find the file free: they make no turn file
        con = _connect_waiting(path, read_only, config, wait_s, deadline, once=True)
        if con is not None:
            return con
    with _turn(path, read_only, deadline, wait_s):
        return _connect_waiting(path, read_only, config, wait_s, deadline)


TURN_SUFFIX = ".turn"  # beside the warehouse: whose turn it is to open the file


@contextmanager
def _turn(path: Path, read_only: bool, deadline: float, wait_s: float) -> Iterator[None]:
    """Hold a shared (reader) or exclusive (writer) flock on `<warehouse>.turn` while
    opening the file, so that a writer waiting for the file goes before the readers that
    come after it.

    DuckDB lets any number of processes read a file, or one write it: readers that come
    one after another, each holding the file a few seconds for its query, never leave
    it free, and a writer waited out its 60 s and failed (four `sigwh sql` loops starved
    every ingest job of bench/stress.py). A writer that finds the file held takes this
    lock before it waits, so new readers wait behind it while those reading finish;
    every process holds it only until DuckDB has opened the file. Only such a writer
    creates the turn file (reads, and writes that find the file free, leave the folder
    as it is). A reader finding no turn file, or one it cannot open, opens without
    taking turns, as does anyone on a file system without flock, and a process that has
    the file open already."""
    turn = path.with_name(path.name + TURN_SUFFIX)
    fd = None
    # A process that holds the file already shares DuckDB's instance: it does not wait,
    # and must not queue behind a writer that waits for it.
    if not (path.exists() and file_format.held_in_this_process(path)):
        flags = os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT
        with suppress(OSError):  # a folder we may not write, a turn file not ours: no turns
            fd = os.open(turn, flags, 0o666)
    if fd is None:
        yield
        return
    try:
        kind = fcntl.LOCK_SH if read_only else fcntl.LOCK_EX
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _held_too_long(path, wait_s) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            except OSError:  # no flock here (some network file systems): no turns
                break
        yield
    finally:
        os.close(fd)  # releases the flock


def _held_too_long(path: Path, wait_s: float) -> WarehouseError:
    return WarehouseError(
        f"{path} is held by another process (waited {wait_s:.0f} s); try again when it is done"
    )


def _connect_waiting(
    path: Path, read_only: bool, config: dict, wait_s: float, deadline: float, once: bool = False
) -> duckdb.DuckDBPyConnection | None:
    """duckdb.connect, retrying with back-off until `deadline` while another process
    holds the file; with `once`, None when the first try finds it held."""
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                _explain_unreadable(path, exc)
                raise WarehouseError(f"cannot open {path}: {_first_line(exc)}") from exc
            if once:
                return None
            if time.monotonic() > deadline:
                raise _held_too_long(path, wait_s) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            _explain_unreadable(path, exc)
            raise WarehouseError(f"cannot open {path}: {_first_line(exc)}") from exc


def _raise_if_write_failed(path: Path, exc: Exception) -> None:
    """A full disk or a failed write (opening replays and checkpoints the file's log, and
    the checks write a reference file in the temporary folder) is not a damaged file."""
    failed = io_errors.explain(path, exc)
    if failed is not None:
        raise failed from exc


def _explain_unreadable(path: Path, exc: Exception) -> None:
    """Raise the clearer error when DuckDB cannot open an existing file: a failed write,
    not a DuckDB file, or cut off (DuckDB could not read a block it needs)."""
    _raise_if_write_failed(path, exc)
    if path.exists():
        file_format.read_header(path)
        if "Could not read enough bytes" in str(exc):
            raise WarehouseError(
                file_format.truncated_message(path, path.stat().st_size, None)
            ) from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def opened(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    wait_s: float = 60.0,
    package_views: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """connect() as a context manager that closes the file (and releases its lock) on exit.

    A writer also requires the schema to be current, so nothing is written into a
    half-migrated layout. `package_views` as in connect(): a caller that reads no view
    (a job writing a batch) saves creating them, about a quarter of a batch's write.
    """
    con = connect(path, read_only=read_only, wait_s=wait_s, package_views=package_views)
    try:
        if not read_only:
            require_current(con, path)
        yield con
    finally:
        con.close()


def pending(con: duckdb.DuckDBPyConnection) -> list[Migration]:
    done = set(sql_files.applied_versions(con))
    return [m for m in sql_files.migrations() if m.version not in done]


def require_current(con: duckdb.DuckDBPyConnection, path: str | Path | None = None) -> None:
    """Refuse to write into a warehouse that still has migrations to apply."""
    todo = pending(con)
    if todo:
        where = path or "this warehouse"
        raise WarehouseError(
            f"{where} is at an older schema ({len(todo)} migration(s) pending, e.g. "
            f"{todo[0].stem}); run `sigwh migrate` first"
        )


def migrate(con: duckdb.DuckDBPyConnection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction, then re-create the views.

    Returns the migrations applied. A failing migration is rolled back whole and raised;
    those before it stay applied.
    """
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp, code_version VARCHAR)"
    )
    _check_not_newer(sql_files.applied_versions(con), Path("this warehouse"))
    applied = []
    for migration in pending(con):
        try:
            with transaction(con):
                con.execute(migration.path.read_text())
                con.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, code_version)"
                    " VALUES (?, ?, ?)",
                    [migration.version, migration.name, __version__],
                )
        except Exception as exc:
            raise WarehouseError(
                f"migration {migration.path.name} failed and was rolled back: {exc}"
            ) from exc
        applied.append(migration)
    views.create(con)
    return applied


def init(path: str | Path | None = None) -> tuple[Path, list[Migration]]:
    """Create the warehouse file if needed and bring it to the current schema."""
    path = Path(path) if path is not None else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect(path, must_exist=False, package_views=False)
    try:
        return path, migrate(con)
    finally:
        con.close()


def table_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(table, rows) for every base table in the warehouse."""
    names = [
        n
        for (n,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    # fetchall(), not fetchone(): DuckDB 2 refuses relation queries after a half-read result.
    return [(n, con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0]) for n in names]
