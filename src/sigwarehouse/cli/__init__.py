"""The `sigwh` command line: thin commands over the library.

Each command parses its options, opens the warehouse, calls one library function and
prints the result. Nothing here imports torch: model work is imported inside the
commands that need it (each such import says so), so `sigwh --help` stays fast.
Options several commands share are defined once, in options.py; query.py and demo.py
hold the code only the CLI uses (`sigwh sql`, `info`, `export`, `recount`; `sigwh demo`).
"""

from __future__ import annotations

import signal
from enum import StrEnum
from pathlib import Path

import typer

from sigwarehouse import __version__, store
from sigwarehouse.cli import help as help_layout
from sigwarehouse.cli import interrupt
from sigwarehouse.cli.catalog import catalog_app
from sigwarehouse.cli.common import (
    fail,
    friendly_errors,
    set_model_trust,
    set_warehouse,
    warehouse_path,
)
from sigwarehouse.cli.corpus import corpus_app
from sigwarehouse.cli.dataset import dataset_app
from sigwarehouse.cli.deepfake import asr, compose, transfer_label
from sigwarehouse.cli.demo import DEMO_PER_LABEL, DEMO_PRESET, run_demo
from sigwarehouse.cli.ingest import ingest, merge
from sigwarehouse.cli.report import report
from sigwarehouse.cli.zoo import zoo_app
from sigwarehouse.freqrex.params import PRESETS
from sigwarehouse.store.convert import convert as convert_warehouse
from sigwarehouse.store.views_check import check as check_views

app = typer.Typer(
    name="sigwh",
    help=(
        "sigwarehouse: find what audio classifiers listen to (sufficient and complete "
        "frequency sets), ask every other model about it, and query the results in DuckDB."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: paragraphs reflowed, no <bool> after flags (cli/help.py)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sigwarehouse {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        "-w",
        envvar="SIGWH_WAREHOUSE",
        help="Warehouse file to use (default ./warehouse.duckdb).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    trust_warehouse_models: bool = typer.Option(
        False,
        "--trust-warehouse-models",
        help="Load hf models from the kind and ref stored in the warehouse even when the "
        "catalog on this machine does not list them. Only for a file whose author you "
        "trust: by default such models load only from your own catalog.",
    ),
) -> None:
    set_warehouse(warehouse)
    set_model_trust(trust_warehouse_models)
    ctx.call_on_close(lambda: set_model_trust(False))  # the choice lasts one command


@app.command()
@friendly_errors
def init() -> None:
    """Create the warehouse file (or bring an existing one to the current schema)."""
    path, applied = store.init(warehouse_path())
    typer.echo(
        f"{path}: schema {store.code_schema_version()} ({len(applied)} migration(s) applied)"
    )


@app.command()
@friendly_errors
def migrate(
    list_only: bool = typer.Option(
        False, "--list", help="Only list the migrations and whether each is applied."
    ),
) -> None:
    """Apply pending schema migrations to the warehouse (each in its own transaction)."""
    path = warehouse_path()
    if list_only:
        con = store.connect(path, read_only=True)
        try:
            done = set(store.applied_versions(con))
        finally:
            con.close()
        for m in store.migrations():
            mark = "applied" if m.version in done else "pending"
            typer.echo(f"{m.version:04d}_{m.name:<30} {mark}")
        return
    con = store.connect(path, package_views=False)
    try:
        applied = store.migrate(con)
    finally:
        con.close()
    for m in applied:
        typer.echo(f"applied {m.stem}")
    typer.echo(f"{path}: at schema {store.code_schema_version()}, views re-created")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def _confirm(phrases: list[str]) -> bool:
    typer.echo("This changes what the warehouse stores:", err=True)
    for phrase in phrases:
        typer.echo(f"  {phrase}", err=True)
    try:
        return typer.confirm("Run it?", default=False, err=True)
    except typer.Abort:  # no answer (no terminal, end of input)
        typer.echo("", err=True)
        return False


def _warn(message: str) -> None:
    typer.secho(message, fg=typer.colors.YELLOW, err=True)


@app.command()
@friendly_errors
def sql(
    query: str = typer.Argument(
        ...,
        help='The SQL to run, e.g. "SELECT * FROM model_accuracy"; several statements '
        "separated by ; print every result.",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write to this file instead of stdout."
    ),
    read_only: bool = typer.Option(
        True,
        "--read-only/--write",
        help="Open without write access (default), so a shared file cannot change.",
        show_default=False,  # the help says it (click would break "read-only" at the hyphen)
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="With --write: run DROP, DELETE, TRUNCATE, ALTER and UPDATE of the warehouse's "
        "data without asking first.",
    ),
    allow_files: bool = typer.Option(
        False,
        "--allow-files",
        help="Let the SQL read and write files and the network (read_csv, COPY, ATTACH). "
        "Off by default because a shared file's views are its author's SQL; use it for "
        "your own queries on your own file.",
    ),
    max_rows: int = typer.Option(40, help="Rows shown in table format (all go to --out)."),
) -> None:
    """Run ad-hoc SQL on the warehouse and print the result.

    Views are sigwarehouse's own; a file whose stored views differ gets a warning.
    """
    from sigwarehouse.cli import query as q  # pyarrow: only commands that query

    text = q.run(
        warehouse_path(),
        query,
        fmt.value,
        out=out,
        read_only=read_only,
        max_rows=max_rows,
        allow_files=allow_files,
        confirm=None if yes else _confirm,
        warn=_warn,
    )
    if text:
        typer.echo(text)


@app.command()
@friendly_errors
def views(
    check: bool = typer.Option(
        False, "--check", help="Exit with status 1 when a view differs from sigwarehouse's."
    ),
) -> None:
    """List the views and macros and where the file's own definitions differ from ours."""
    text, n_differ = check_views(warehouse_path())
    typer.echo(text)
    if check and n_differ:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def convert(
    storage_version: str = typer.Option(
        "v1.2.0",
        "--storage-version",
        help="DuckDB storage version to write: v1.1.0, v1.2.0 (read by DuckDB 1.2 and newer), "
        "v1.3.0, v1.4.0 or v1.5.0.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write the converted warehouse here; without it the file is replaced and the "
        "original kept as FILE.bak.",
    ),
) -> None:
    """Rewrite the warehouse in a storage version that older DuckDB readers open."""
    typer.echo(convert_warehouse(warehouse_path(), storage_version, out).describe())


@app.command()
@friendly_errors
def info() -> None:
    """Summarise the warehouse: schema, tasks, datasets, clips, models and rows per table."""
    from sigwarehouse.cli import query as q  # pyarrow: only commands that query

    typer.echo(q.summary(warehouse_path()))


@app.command()
@friendly_errors
def recount() -> None:
    """Count the stored signals afresh into transfer_counts, which the α and β views read.

    sigwarehouse keeps those counts as it writes; run this after rows of signal_probs
    were changed by another program (`sigwh info` warns when the counts disagree).
    `sigwh sql --write` recounts by itself. Seconds at 10^8 rows."""
    from sigwarehouse.cli import query as q  # pyarrow: only commands that query

    typer.echo(q.recount(warehouse_path()))


@app.command()
@friendly_errors
def export(
    parquet: Path = typer.Option(
        ..., "--parquet", help="Folder to write one Parquet file per table."
    ),
) -> None:
    """Write every table as Parquet (plus schema.sql and load.sql to rebuild it in DuckDB)."""
    from sigwarehouse.cli import query as q  # pyarrow: only commands that query

    typer.echo(q.export_parquet(warehouse_path(), parquet))


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for the HTML report."),
    catalog: Path = typer.Option(Path("ingest"), help="The catalog folder (the shipped one)."),
    per_label: int = typer.Option(
        DEMO_PER_LABEL,
        help="Clips of each label the warehouse registers and every model explains "
        "(`sigwh dataset add NAME` registers the rest later).",
    ),
    all_clips: bool = typer.Option(
        False, "--all-clips", help="Explain every evaluation clip (instead of --per-label)."
    ),
    preset: str = typer.Option(
        DEMO_PRESET,
        help="The freqrex parameter set every model explains with: 'quick' (about ten "
        "minutes on two cores) or 'default' (the figures to publish; several times "
        "longer). It becomes the warehouse's current set, which `sigwh ingest` continues.",
    ),
    workers: int = typer.Option(
        None,
        min=1,
        help="Models explained at once, each in a process of its own with one torch "
        "thread (default: one per CPU core, up to 8); 1 explains them one after another, "
        "with a progress bar.",
        show_default=False,
    ),
) -> None:
    """Build the warehouse from the shipped corpus and zoo, run every analysis, write the report.

    Runs on the CPU: about ten minutes on two cores with the defaults (four clips of each
    label, every model, one worker process per core). A second run only
    does what is missing.
    """
    if preset not in PRESETS:
        fail(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    sample = None if all_clips else per_label
    result = run_demo(
        warehouse_path(),
        catalog,
        out,
        params=PRESETS[preset],
        say=typer.echo,
        per_label=sample,
        workers=workers,
    )
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    typer.echo(f"done ({steps}); warehouse: {result.warehouse}")
    typer.echo(f"report: {result.report}")
    typer.echo('next: sigwh sql "SELECT * FROM transferability_summary"')


def _register() -> None:
    """Sub-commands live in their own modules; none of them imports torch at start."""
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(corpus_app, name="corpus")
    app.add_typer(zoo_app, name="zoo")
    app.command()(ingest)
    app.command()(merge)
    app.command()(report)
    app.command("compose")(compose)
    app.command("transfer-label")(transfer_label)
    app.command("asr")(asr)


_register()
help_layout.apply(app)


def main() -> None:
    """Console-script entry point."""
    # Past a file-size limit (`ulimit -f`) the system sends SIGXFSZ, which kills the
    # process without a word; ignored, the write fails with "File too large" instead and
    # the command ends with the full-disk message (store/io_errors.py).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    interrupt.install()
    try:
        app()
    except KeyboardInterrupt:  # before a command started (its own end: friendly_errors)
        interrupt.say()
        raise SystemExit(interrupt.STATUS) from None
    except SystemExit as exc:  # typer's own silent exit 130 for Ctrl-C outside a command
        if exc.code == interrupt.STATUS:
            interrupt.say_once()
        raise
