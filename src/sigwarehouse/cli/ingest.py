"""`sigwh ingest`: explain clips with one model and store everything the analyses need."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sigwarehouse import records, store
from sigwarehouse.cli import interrupt
from sigwarehouse.cli.common import fail, friendly_errors, warehouse_path
from sigwarehouse.cli.options import Dataset, Device, DryRun, Model
from sigwarehouse.devices import CPU_CLIPS_PER_BATCH, GPU_CLIPS_PER_BATCH
from sigwarehouse.freqrex.params import PRESETS, FreqrexParams
from sigwarehouse.jobs.plans import carry_out
from sigwarehouse.jobs.writer import HoldPolicy, hold_at_most

# The defaults shown in --help are the parameters' own; the demo uses the "quick" preset.
DEFAULTS = FreqrexParams()


def warn(message: str) -> None:
    typer.secho(message, fg=typer.colors.YELLOW, err=True)


def _parse_batch_size(text: str) -> int | None:
    """--batch-size: a whole number >= 1, or "auto" (None)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        fail(f"--batch-size {text!r}: expected a whole number >= 1, or auto")
    return value


def _current_params(path: Path) -> records.CurrentParams | None:
    """The warehouse's current parameter set; None for a missing file or one with
    migrations pending (the job itself then says what to do)."""
    if not path.exists():
        return None
    with store.opened(path, read_only=True, package_views=False) as con:
        return None if store.pending(con) else records.current_params(con)


def _parse_params(
    preset: str | None,
    current: records.CurrentParams | None,
    seed: int | None,
    iterations: int | None,
    delta: float | None,
    batch_size: int,
    dtype: str | None,
    extra: list[str],
) -> FreqrexParams:
    """The preset's parameters (without --preset: the warehouse's current set, else the
    default preset), with what the command line names replacing its values."""
    if preset is not None and preset not in PRESETS:
        fail(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if preset is None and current is not None:
        base = current.params()
    else:
        base = PRESETS[preset or "default"]
    values = base.to_dict() | {"batch_size": batch_size, "dtype": dtype}
    given = {"seed": seed, "iterations": iterations, "delta": delta}
    values |= {key: value for key, value in given.items() if value is not None}
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep:
            fail(f"--param {item!r}: expected KEY=VALUE, e.g. --param min_band_bins=32")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        return FreqrexParams.from_dict(values)
    except (TypeError, ValueError) as exc:
        fail(f"freqrex parameters: {exc} (see `FreqrexParams` in sigwarehouse.freqrex.params)")


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if shard is None:
        return None
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        fail(f"--shard {shard!r}: expected i/n, e.g. 0/2 and 1/2 for two jobs")
    if not 0 <= index < count:
        fail(f"--shard {shard!r}: i must be in 0..n-1")
    return index, count


@friendly_errors
def ingest(
    model: Model,
    dataset: Dataset = None,
    device: Device = None,
    limit: int | None = typer.Option(
        None, help="Explain at most N clips in this run (default: no limit)."
    ),
    per_label: int | None = typer.Option(
        None, help="Only the first N clips of each label, a balanced sample (default: every clip)."
    ),
    batch_size: str = typer.Option(
        str(DEFAULTS.batch_size),
        metavar="N|auto",
        help="Mutants per model forward pass. `auto` sizes it from the GPU's free memory "
        "(a probe pass measures the memory one mutant takes; the largest power of two "
        "that fits, up to 1024); on a CPU auto keeps the default. Not part of the "
        "parameter hash: results do not depend on it.",
    ),
    dtype: str | None = typer.Option(
        None,
        metavar="float32|bfloat16|float16",
        help="Precision the explained model's network runs in during the search "
        "(default: bfloat16 on cuda, float32 on cpu). Zoo and hf models run it under "
        "autocast; python-kind models always run float32. Features and FFT masking stay "
        "float32, and every mask the search returns is checked in float32 (a clip whose "
        "mask fails there is searched again in float32), so the stored results are the "
        "float32 model's; not part of the parameter hash.",
    ),
    clips_per_batch: int | None = typer.Option(
        None,
        help="Clips explained together and stored in one transaction "
        f"(default: {GPU_CLIPS_PER_BATCH} on cuda, where more clips fill the batches better; "
        f"{CPU_CLIPS_PER_BATCH} on cpu).",
    ),
    shard: str | None = typer.Option(
        None,
        help="i/n: only clips whose id % n == i, to split a job across processes "
        "(default: every clip). With --into, each shard writes its own file, e.g. one "
        "per task of a SLURM array, i from $SLURM_ARRAY_TASK_ID and n from "
        "$SLURM_ARRAY_TASK_COUNT.",
    ),
    into: Path | None = typer.Option(
        None,
        metavar="SHARD.duckdb",
        help="Write the results into this shard file (created if missing) instead of the "
        "warehouse, which is then only read: many shard jobs can run at once on the same "
        "warehouse. Fold them in afterwards with `sigwh merge SHARD...`. A rerun of the "
        "same command does only what neither file holds.",
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Compute on a Ray cluster instead of in this process (default: here): one "
        "actor per GPU (a CPU actor per core where there is none) loads the models once "
        "and explains the batches this process "
        "sends; this process alone writes the warehouse. ADDRESS: `auto` (the cluster "
        "this machine joined with `ray start`), `HOST:6379` or `ray://HOST:10001`, or "
        "`local` (a Ray instance started for this job on this machine; RAY_ADDRESS "
        "when set). Needs `pip install 'sigwarehouse[ray]'` on every node.",
    ),
    actors: int | None = typer.Option(
        None,
        min=1,
        help="With --ray: how many actors (default: one per GPU of the cluster, else one per CPU).",
    ),
    preset: str | None = typer.Option(
        None,
        help="Parameter set to start from (default: the warehouse's current set, the one "
        "it was built with, shown by `sigwh info`; 'default' for a warehouse without "
        "results): 'default' (masks certified 1-minimal per variable up to 1024 kept "
        "variables: the figures to publish) or 'quick' (the demo's: two responsibility "
        "trees instead of four, certification up to 256 kept variables, a sampled figure "
        "above). The options below replace single values of it. Results of a set other "
        "than the current one stay apart (the _for macros reach them).",
        show_default=False,
    ),
    seed: int | None = typer.Option(
        None,
        help="Seed of the freqrex search (stored with every row). "
        f"(default: the set's; {DEFAULTS.seed} in 'default')",
    ),
    iterations: int | None = typer.Option(
        None,
        help="freqrex responsibility iterations (random refinement trees). "
        f"(default: the set's; {DEFAULTS.iterations} in 'default')",
    ),
    delta: float | None = typer.Option(
        None, help=f"δ of δ-completeness. (default: the set's; {DEFAULTS.delta} in 'default')"
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        metavar="KEY=VALUE",
        help="Any other freqrex parameter (repeatable), e.g. --param min_band_bins=32; "
        "every parameter and its default is in the class FreqrexParams of sigwarehouse's "
        "freqrex/params.py.",
    ),
    threads: int | None = typer.Option(
        None,
        min=1,
        help="CPU threads torch may use (default: torch's own, one per core; its threads "
        "wait passively, so other busy processes slow a job down only by the cores they "
        "take).",
    ),
    hold_s: float = typer.Option(
        HoldPolicy().max_hold_s,
        "--hold-s",
        min=0,
        help="Seconds the job may keep the warehouse open for writing across batches: "
        "opening the file costs about as much as writing a batch, but while it is open "
        "another process that wants it (a second job, `sigwh sql`, a report) waits. "
        "0: close it after every batch.",
    ),
    dry_run: DryRun = False,
) -> None:
    """Explain every clip of MODEL's task not yet done and store the results.

    Stores MODEL's original probabilities, its freqrex explanation (responsibility,
    sufficient and complete masks) and every model's probabilities on the sufficient,
    complete and inverse signals; then evaluates MODEL on the signals other models have
    stored. Rerunning does only the missing work; a killed job loses one batch at most.
    """
    # jobs.ingest imports torch: only once the command runs
    from sigwarehouse.jobs import ingest as job

    if dtype is not None and dtype not in ("float32", "bfloat16", "float16"):
        fail(f"--dtype {dtype!r}: expected float32, bfloat16 or float16")
    fixed_batch = _parse_batch_size(batch_size)
    params = _parse_params(
        preset,
        _current_params(warehouse_path()),
        seed,
        iterations,
        delta,
        fixed_batch or DEFAULTS.batch_size,
        dtype,
        param,
    )
    if ray is not None and into is not None:
        fail("--ray and --into: choose one (a Ray driver writes the warehouse itself)")
    if actors is not None and ray is None:
        fail("--actors goes with --ray")
    settings = job.Settings(
        device=device,
        clips_per_batch=clips_per_batch,
        hold=hold_at_most(hold_s),
        auto_batch=fixed_batch is None,
        threads=threads,
    )
    driver = job.create(warehouse_path(), settings, into=into, ray=ray, actors=actors)
    selection = job.Selection(
        dataset=dataset, limit=limit, per_label=per_label, shard=_parse_shard(shard)
    )
    plan = driver.plan(model, params, selection)

    def run(plan: job.IngestPlan) -> job.IngestSummary:
        with job.warnings_held(warn), job.progress_bar(plan) as progress:
            return driver.run(plan, progress)

    try:
        carry_out(plan, run, dry_run=dry_run, say=typer.echo)
    except KeyboardInterrupt:
        interrupt.say("interrupted: stored batches are kept; rerun the same command to go on")
        raise typer.Exit(interrupt.STATUS) from None
    if dry_run and not plan.is_empty():  # a dry run that passes means the job can start
        loaded = job.check_models(warehouse_path(), plan)
        typer.echo(f"  models the job loads, each loaded now to check: {', '.join(loaded)}")


@friendly_errors
def merge(
    shards: list[Path] = typer.Argument(
        ..., metavar="SHARD", help="Shard files written by `sigwh ingest --into`."
    ),
) -> None:
    """Fold shard files into the warehouse (each shard in one transaction).

    Rows keep their natural keys: a fact stored already is skipped, so merging a shard
    twice, or a partial shard and later its complete version, stores each fact once;
    each run keeps its latest status. A shard made from another warehouse is refused.
    """
    from sigwarehouse.jobs.ingest import shards as shard_files  # torch: not at start-up

    for summary in shard_files.merge(warehouse_path(), shards):
        typer.echo(summary.describe())
