"""`sigwh dataset`: register a dataset's audio files as clips, move it, inspect it."""

from __future__ import annotations

from pathlib import Path

import typer

from sigwarehouse.cli.common import fail, friendly_errors, warehouse_path
from sigwarehouse.errors import SigwhError
from sigwarehouse.store import opened

dataset_app = typer.Typer(
    help="Datasets: register their audio files as clips, relocate them, list rejections.",
    no_args_is_help=True,
)


@dataset_app.command()
@friendly_errors
def add(
    name: str | None = typer.Argument(None, help="Dataset name from the catalog."),
    all_: bool = typer.Option(False, "--all", help="Add every dataset in the warehouse."),
    store_audio: bool = typer.Option(
        False, "--store-audio", help="Also store each clip as FLAC, so the file is self-contained."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Scan a dataset's files: register valid clips, record rejected files with a reason."""
    from sigwarehouse import clips  # clips and audio import scipy: not at start-up

    if all_ == (name is not None):
        fail("give a dataset NAME or --all (not both)")
    failed = []
    with opened(warehouse_path()) as con:
        names = clips.dataset_names(con) if all_ else [name]
        if not names:
            fail("the warehouse has no datasets; run `sigwh catalog sync` first")
        for each in names:
            try:
                summary = clips.add_dataset(con, each, store_audio=store_audio, progress=progress)
            except SigwhError as exc:
                if not all_:
                    raise
                failed.append(str(exc))  # with --all, one bad dataset does not stop the others
                continue
            for line in summary.lines():
                typer.echo(line)
    if failed:
        fail(" | ".join(failed))


@dataset_app.command()
@friendly_errors
def relocate(
    name: str = typer.Argument(..., help="Dataset name."),
    new_root: Path = typer.Argument(..., help="The folder that now holds the dataset's files."),
) -> None:
    """Point a dataset at a new root folder, after checking its clips' files are there."""
    from sigwarehouse import clips  # clips and audio import scipy: not at start-up

    with opened(warehouse_path()) as con:
        typer.echo(clips.relocate(con, name, new_root).line())


@dataset_app.command("list")
@friendly_errors
def list_() -> None:
    """Show every dataset with its clip, blob and rejection counts."""
    from sigwarehouse import clips  # clips and audio import scipy: not at start-up

    with opened(warehouse_path(), read_only=True) as con:
        typer.echo(str(clips.listing(con)))


@dataset_app.command()
@friendly_errors
def rejected(name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """List a dataset's rejected files, one per line: path, a tab, the reason."""
    from sigwarehouse import clips  # clips and audio import scipy: not at start-up

    with opened(warehouse_path(), read_only=True) as con:
        rows = clips.rejected(con, name).fetchall()
    for path, reason in rows:
        typer.echo(f"{path}\t{reason}")
    if not rows:
        typer.echo(f"{name}: no rejected files")
