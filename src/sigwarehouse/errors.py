"""The project's error type: raised with a message that says what went wrong and what to do.

The CLI prints such errors as one line and exits with status 1; anything else is a bug
and keeps its traceback.
"""


class SigwhError(Exception):
    """A user-facing problem: bad input, a missing file, a warehouse in the wrong state."""


class WarehouseError(SigwhError):
    """A problem with a warehouse file, with a message that says what to do."""
