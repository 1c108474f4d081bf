"""`sigwh corpus`: build the shipped demo corpus from offline Debian sources."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from sigwarehouse.cli.common import friendly_errors

corpus_app = typer.Typer(
    help="Build the demo corpus (emotion, genre, spoof) from offline Debian sources.",
    no_args_is_help=True,
)


@corpus_app.command("build")
@friendly_errors
def build(
    out: Path = typer.Option(Path("data/corpus"), "--out", help="Corpus root directory."),
    seed: int = typer.Option(0, "--seed", help="Corpus seed; the same seed gives the same bytes."),
    train_per_class: int | None = typer.Option(
        None, "--train-per-class", help="Train clips per class (default per task; 0 skips)."
    ),
    eval_per_class: int | None = typer.Option(
        None, "--eval-per-class", help="Eval clips per class (default per task; 0 skips)."
    ),
    task: list[str] | None = typer.Option(
        None,
        "--task",
        metavar="TASK",
        help="Task to build: emotion, genre or spoof (repeatable; default all).",
    ),
    install_missing: bool = typer.Option(
        False, "--install-missing", help="apt-get install missing Debian packages first."
    ),
    jobs: int | None = typer.Option(None, "--jobs", help="Worker processes (default 2)."),
) -> None:
    """Render the train and eval splits and the eval manifest under --out."""
    # the corpus builders import scipy.signal (most of a second): not at CLI start-up
    from sigwarehouse.corpus import TASKS, build_corpus
    from sigwarehouse.corpus.debian import apt_command, install, missing_packages

    tasks = list(task or TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise typer.BadParameter(
            f"unknown task(s) {unknown}; known: {list(TASKS)}", param_hint="--task"
        )
    missing = missing_packages(tasks)
    if missing and install_missing:
        try:
            install(missing)
        except (PermissionError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from err
        missing = missing_packages(tasks)
    if missing:
        typer.echo(f"missing Debian packages: {' '.join(missing)}", err=True)
        typer.echo(f"install them with:  sudo {apt_command(missing)}", err=True)
        typer.echo("or rerun with --install-missing (as root).", err=True)
        raise typer.Exit(1)

    last = {"name": ""}

    def progress(name: str, done: int, total: int) -> None:
        if done == total or name != last["name"]:
            typer.echo(f"  {name}: {done}/{total}", err=True)
        last["name"] = name

    start = time.monotonic()
    rows = build_corpus(out, seed, train_per_class, eval_per_class, tasks, jobs, progress)
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r["task"], r["split"])] = counts.get((r["task"], r["split"]), 0) + 1
    for (t, split), n in sorted(counts.items()):
        typer.echo(f"{t}/{split}: {n} clips")
    typer.echo(f"wrote {len(rows)} clips under {out} in {time.monotonic() - start:.0f} s")
