"""Ctrl-C: every command ends with one line and exit status 130.

Python turns SIGINT into KeyboardInterrupt only when its main thread runs Python code,
and DuckDB ends a query it was asked to stop only between two pieces of work, which in a
large join can be minutes apart (a `sigwh sql` query went on for minutes after Ctrl-C,
then printed a traceback). So the signal is also watched from a thread: a command that
has not ended within GRACE_S of Ctrl-C (by `say`, which every command's end calls) is
ended at once, with the same line and status 130. A DuckDB transaction cut off that way
is rolled back when the file is next opened, as after a kill, which every job is built
to survive (it loses at most its batch in flight). Where Python takes the interrupt,
`friendly_errors` (common.py) says the line; DuckDB's "Query interrupted" error counts
as Ctrl-C too (`is_interrupt`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

MESSAGE = "interrupted (Ctrl-C)"
STATUS = 130  # 128 + SIGINT, what shells report for a command Ctrl-C ended
GRACE_S = 5.0  # longer than a model's forward pass on a CPU batch

_ending = threading.Event()
_installed = threading.Event()  # set by install(): this process is the `sigwh` command


def say(message: str = MESSAGE) -> None:
    """The one line every interrupted command ends with, on stderr (on a terminal after a
    line break: a progress bar or the echoed ^C may end the line before it)."""
    _ending.set()
    if _installed.is_set() and threading.current_thread() is threading.main_thread():
        # The command is ending: a signal still pending must not become a second
        # KeyboardInterrupt during the exit (DuckDB can leave one pending after it turns
        # Ctrl-C into its own error), which would end the process by SIGINT, not 130.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stderr.write(f"{chr(10) if sys.stderr.isatty() else ''}{message}\n")
    sys.stderr.flush()


def say_once() -> None:
    """`say`, unless the command said it (or its own line) already."""
    if not _ending.is_set():
        say()


def is_interrupt(exc: BaseException) -> bool:
    """Whether `exc` is Ctrl-C: KeyboardInterrupt, or DuckDB ending a query for it."""
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "InterruptException":
        return True
    return isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted"


def install() -> None:
    """Watch for Ctrl-C (call once, from the main thread, before the command runs).

    Leaves SIGINT alone where it is ignored: a process started in the background with
    `&` (or nohup) ignores it, and must go on doing so."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    _installed.set()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_end,), name="sigint-watch", daemon=True).start()


def _watch(read_end: int) -> None:
    """Each SIGINT writes its number to the wakeup pipe at once, whatever the main
    thread does; if the command has not ended GRACE_S later, end the process."""
    while True:
        received = os.read(read_end, 64)
        if not received:
            return
        if signal.SIGINT in received and not _ending.wait(GRACE_S):
            say()
            os._exit(STATUS)
