"""Options several commands share, each defined once (typer reads `Annotated` types):
a command declares `device: Device = None` and gets the same flag and help text as
every other command that takes it."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str | None, typer.Option(help="cuda or cpu (default: cuda when available).")]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan and do nothing (`sigwh ingest` also loads each model the job "
        "would, to check that it can start).",
    ),
]
Dataset = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Only this dataset (default: every dataset of the task)."),
]
Model = Annotated[str, typer.Option("--model", "-m", help="Model id from the catalog, e.g. vc3.")]
