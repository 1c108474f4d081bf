"""`sigwh report`: write the HTML report of the warehouse (suitable for a scheduled job)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from sigwarehouse.cli.common import fail, friendly_errors, warehouse_path


@friendly_errors
def report(
    out: Path = typer.Option(
        Path("report"), "--out", "-o", help="Folder to write index.html into."
    ),
    if_changed: bool = typer.Option(
        False,
        "--if-changed",
        help="Rebuild only when the warehouse, or the code of an analysis, changed since "
        "the last build into --out (exit 0 either way; 1 on error).",
    ),
    analyses: list[Path] = typer.Option(
        [],
        "--analyses",
        metavar="DIR",
        help="Also run your own analysis modules in DIR (repeatable): each NAME.py there "
        "defines run(con) returning a sigwarehouse.report.Section; see docs/analyses.md. "
        "Without it, only those you put in the analyses/ folder of a source checkout "
        "run beside the shipped ones.",
    ),
) -> None:
    """Write a self-contained HTML report: every analysis, its runs, and listenable examples.

    Your own analyses run after the shipped results; one that fails gets a section saying
    why, and the command then ends with exit status 1.
    """
    from sigwarehouse.report import unchanged  # polars: not at start-up

    if if_changed:
        # Decided before the analyses (torch, scipy, altair: seconds) are imported; their
        # code counts by its folders, which find_spec names without importing them.
        shipped = Path(importlib.util.find_spec("sigwarehouse.analyses").origin).parent
        folders = list(dict.fromkeys(p.resolve() for p in [shipped, *analyses]))
        result = unchanged(warehouse_path(), out, folders)
        if result is not None:
            typer.echo(result.message)
            return
    from sigwarehouse.analyses import build_report  # torch and altair: not at start-up

    result = build_report(warehouse_path(), out, if_changed=if_changed, analyses=analyses)
    typer.echo(result.message)
    if result.failed:
        fail("; ".join(result.failed))
