"""Helpers for the tests of shared warehouse files: fresh copies of the filled warehouse
(conftest's `small_filled`, built once), the CLI, and a way to call every view and macro
of the package.

The list of views is read from the package's sql/views folder (not written out here),
so the tests follow the views as they change.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from sigwarehouse.cli import app
from sigwarehouse.store import sql_files


def copy_of(source: Path, directory: Path, name: str = "warehouse.duckdb") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    shutil.copyfile(source, target)
    return target


def sigwh(path: Path, *args: str, input: str | None = None):
    """`sigwh --warehouse PATH ARGS...` through CliRunner; returns the click Result."""
    return CliRunner().invoke(app, ["--warehouse", str(path), *args], input=input)


def digest(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file in `folder`: to show that nothing was written."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def view_queries(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """name -> a query returning every row of that package view or macro, in a fixed
    order. Macro arguments: 0.5 for numbers, a stored parameter-set hash for a `hash`, a
    small mask for mask_bands."""
    params = dict(
        con.execute(
            "SELECT function_name, parameters FROM duckdb_functions() "
            "WHERE function_type = 'table_macro' AND database_name = 'temp'"
        ).fetchall()
    )
    some_hash = con.execute("SELECT min(params_hash) FROM freqrex_params").fetchall()[0][0]
    out = {}
    for name, _ in sql_files.ordered_views():
        if name in params:
            args = ", ".join(_argument(p, some_hash) for p in params[name])
            out[name] = f"SELECT * FROM {name}({args}) ORDER BY ALL"
        else:
            out[name] = f"SELECT * FROM {name} ORDER BY ALL"
    return out


# mask_bands' arguments: a 12-bin mask keeping bins 0, 2, 5, 7 and 8 to 11, and its clip
MASK_ARGUMENTS = {"mask": "'\\xA5\\xF0'::BLOB", "n_bins": "12", "n_samples": "22"}


def _argument(parameter: str, some_hash: str) -> str:
    if "hash" in parameter:
        return f"'{some_hash}'"
    return MASK_ARGUMENTS.get(parameter, "16000" if parameter == "sample_rate" else "0.5")


def rounded(rows: list[tuple]) -> list[tuple]:
    """Rows with floats rounded to 9 digits (and sorted again): DuckDB sums in parallel,
    so the last bits of an average can differ between two runs of one query."""

    def r(value):
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, list):
            return [r(v) for v in value]
        return value

    return sorted((tuple(r(v) for v in row) for row in rows), key=repr)
