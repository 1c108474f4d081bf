"""Failed writes told apart from damaged files: a full disk, and the disk failing a call.

DuckDB reports a write that found no room (a full disk, a quota, a file-size limit such
as `ulimit -f`) and a write the system refused (an I/O error, an interrupted call) as
I/O or transaction errors carrying the system's message: the same kinds of error it
raises for a damaged file. Told apart here, so the user reads "free space and rerun"
or "check the disk and rerun" instead of "restore the file from a backup" or a
traceback. Neither damages the warehouse: each batch is one transaction, and the one
that could not be written is rolled back whole (DuckDB keeps what it could not
checkpoint in its log, and replays it when the file is next opened).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from sigwarehouse.errors import WarehouseError

# The errors of a write that found no room, as the system words them (strerror), which
# is how they reach us through DuckDB's messages.
NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_NO_ROOM_TEXT = tuple(os.strerror(code) for code in NO_ROOM)
# DuckDB's words for a write-side system call on a file that failed, e.g.
#   Could not write file "….wal": Input/output error
# (a read that fails is left to the checks of damaged files). The name is quoted \"so\"
# where DuckDB wraps the message in JSON (a failed asynchronous write of an export).
_FAILED_CALL = re.compile(
    r'Could not (?:write|fsync|truncate|sync)(?: file)? \\?"([^"\\]+)\\?"[^:]*: ?([^"\\\n]*)',
    re.IGNORECASE,
)
# A write DuckDB cannot recover from in this process ends its database: FATAL Error:
# fsync failed! The file holds what was committed before (the log is replayed on open).
_FATAL_CALL = re.compile(r"(?:fsync|write)\w* failed!?", re.IGNORECASE)


def _chain(exc: BaseException):
    """exc and the errors it was raised from, in turn."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def no_room_cause(exc: BaseException) -> tuple[str, str | None] | None:
    """(the system's message, the file named) when `exc`, or an error it was raised
    from, is a write that found no room; else None."""
    for current in _chain(exc):
        if isinstance(current, OSError) and current.errno in NO_ROOM:
            return os.strerror(current.errno), current.filename
        text = str(current)
        for message in _NO_ROOM_TEXT:
            if message in text:
                call = _FAILED_CALL.search(text)
                return message, call[1] if call else None
    return None


def failed_call(exc: BaseException) -> tuple[str | None, str] | None:
    """(the file, the system's message) when `exc`, or an error it was raised from, is
    DuckDB saying a system call on a file failed; else None. The file is None where
    DuckDB names none (its fatal "fsync failed!", after which it drops the database)."""
    for current in _chain(exc):
        text = str(current)
        call = _FAILED_CALL.search(text)
        if call:
            return call[1], call[2].strip() or "failed"
        fatal = _FATAL_CALL.search(text)
        if fatal:
            return None, fatal[0]
    return None


def explain(warehouse: Path, exc: BaseException) -> WarehouseError | None:
    """The one-line error for a write into `warehouse` (or beside it) that found no room
    or that the system failed, or None when `exc` is neither."""
    found = no_room_cause(exc)
    if found is not None:
        cause, named = found
        to = f" to {named}" if named and Path(named) != Path(warehouse) else ""
        return WarehouseError(
            f"{warehouse}: a write{to} failed: {cause}. The disk is full or a file-size "
            "limit was reached; everything stored before is kept. Free some space (or raise "
            "the limit, see `ulimit -f`) and rerun the same command: it goes on from there"
        )
    call = failed_call(exc)
    if call is not None:
        named, cause = call
        on = f" to {named}" if named else ""
        return WarehouseError(
            f"{warehouse}: a write{on} failed: {cause.rstrip('!. ')}. What was being "
            "written is rolled back and everything stored before is kept; check the disk "
            "(e.g. `dmesg`, free space) and rerun the same command: it goes on from there"
        )
    return None
