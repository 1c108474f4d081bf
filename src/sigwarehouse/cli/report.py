"""`sigwh report`: write the HTML report of the warehouse (suitable for a scheduled job)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from sigwarehouse.cli.common import friendly_errors, warehouse_path


@friendly_errors
def report(
    out: Path = typer.Option(
        Path("report"), "--out", "-o", help="Folder to write index.html into."
    ),
    if_changed: bool = typer.Option(
        False,
        "--if-changed",
        help="Rebuild only when the warehouse changed since the last build into --out "
        "(exit 0 either way; 1 on error).",
    ),
) -> None:
    """Write a self-contained HTML report: every analysis, its runs, and listenable examples."""
    from sigwarehouse.report import unchanged  # polars: not at start-up

    if if_changed:
        # Decided before the analyses (torch, scipy, altair: seconds) are imported; their
        # code counts by its folder, which find_spec names without importing it.
        analyses = Path(importlib.util.find_spec("sigwarehouse.analyses").origin).parent
        result = unchanged(warehouse_path(), out, [analyses])
        if result is not None:
            typer.echo(result.message)
            return
    from sigwarehouse.analyses import build_report  # torch and altair: not at start-up

    result = build_report(warehouse_path(), out, if_changed=if_changed)
    typer.echo(result.message)
