"""What every command shares: the warehouse path, and turning errors into one clear line."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from sigwarehouse.cli import interrupt
from sigwarehouse.errors import SigwhError
from sigwarehouse.models import trust
from sigwarehouse.store import default_path, io_errors

F = TypeVar("F", bound=Callable[..., Any])

_state: dict[str, Path] = {}


def set_warehouse(path: Path | None) -> None:
    if path is not None:
        _state["warehouse"] = path
    else:
        _state.pop("warehouse", None)


def set_model_trust(trust_warehouse: bool) -> None:
    """--trust-warehouse-models: whether model jobs may load hf models the local catalog
    does not list, from the kind and ref the warehouse stores."""
    trust.set_source(trust.ModelSource(trust_warehouse=trust_warehouse))


def warehouse_path() -> Path:
    """The warehouse the user chose: --warehouse, else $SIGWH_WAREHOUSE, else ./warehouse.duckdb."""
    return _state.get("warehouse") or default_path()


def catalog_dir(explicit: Path | None = None) -> Path:
    """The catalog folder: --catalog, else $SIGWH_CATALOG, else ./ingest."""
    return explicit or Path(os.environ.get("SIGWH_CATALOG", "ingest"))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for a person and exit with `code`."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def friendly_errors(func: F) -> F:
    """Decorate a command so that a SigwhError, a failed write and a damaged file end it
    with one line instead of a traceback, and Ctrl-C with one line and exit status 130
    (see interrupt.py)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):  # the command's own ending, already said
            raise
        except (KeyboardInterrupt, Exception) as exc:
            if interrupt.is_interrupt(exc):
                interrupt.say()
                raise typer.Exit(interrupt.STATUS) from None
            # A full disk or a failed write reaches us as whatever error the write raised
            # (DuckDB's, an OSError, or ours around either): it says to free space or
            # check the disk and rerun, never to restore the file.
            failed_write = io_errors.explain(warehouse_path(), exc)
            if failed_write is not None:
                fail(str(failed_write))
            if isinstance(exc, SigwhError):
                fail(str(exc))
            # DuckDB's errors on reading a damaged file (a block cut off, bytes that do not
            # deserialise) are about the file, not a bug here: say which file and what to do.
            if type(exc).__name__ not in {"IOException", "SerializationException"}:
                raise
            fail(
                f"reading {warehouse_path()} failed: {str(exc).strip().splitlines()[0]}; "
                "the file may be truncated or damaged: restore it from a backup or a copy"
            )

    return wrapper  # type: ignore[return-value]
