"""`sigwh catalog`: load the declarative catalog (ingest/*.toml) and show what is known."""

from __future__ import annotations

from pathlib import Path

import typer

from sigwarehouse.cli.common import catalog_dir, friendly_errors, warehouse_path
from sigwarehouse.store import opened

catalog_app = typer.Typer(
    help="The catalog of tasks, datasets and models (TOML files in ingest/).",
    no_args_is_help=True,
)


@catalog_app.command()
@friendly_errors
def sync(
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        "-c",
        help="Catalog folder (default $SIGWH_CATALOG, else ./ingest).",
    ),
) -> None:
    """Validate the catalog and upsert its tasks, datasets and models (all or nothing)."""
    from sigwarehouse import catalog as cat  # sqlmodel and pydantic: half a second

    folder = catalog_dir(catalog)
    with opened(warehouse_path()) as con:
        summary = cat.sync(con, folder)
    typer.echo(f"synced {folder}")
    for line in summary.lines():
        typer.echo(line)


@catalog_app.command("list")
@friendly_errors
def list_() -> None:
    """Show the tasks, datasets and models in the warehouse."""
    from sigwarehouse import catalog as cat  # sqlmodel and pydantic: half a second

    with opened(warehouse_path(), read_only=True) as con:
        for title, rel in cat.listing(con).items():
            typer.echo(title)
            typer.echo(str(rel))
