"""`sigwh compose`, `sigwh transfer-label`, `sigwh asr`: the paper's section 5 as jobs.

Thin commands: each plans with the warehouse open read-only, prints the plan, and runs
the library job (jobs/compose.py, jobs/label_transfer.py, jobs/asr.py), which stores
each batch in one short transaction. Every one is resumable: rerun it to finish.
"""

from __future__ import annotations

import typer

from sigwarehouse import devices, store
from sigwarehouse.cli.common import friendly_errors, warehouse_path
from sigwarehouse.cli.options import Dataset, Device, DryRun, Model
from sigwarehouse.jobs.plans import carry_out


@friendly_errors
def compose(
    model: Model,
    dataset: Dataset = None,
    seed: int = typer.Option(0, help="Seeds the order in which candidates are tried."),
    params_hash: str | None = typer.Option(
        None,
        help="The explanations' parameter set (default: MODEL's only one; needed when it has "
        "several).",
    ),
    device: Device = None,
    dry_run: DryRun = False,
) -> None:
    """Compose a global signature per class: superimpose MODEL's sufficient signals.

    For each dataset and class c, MODEL's stored sufficient signals of c are tried in a
    seeded order (cropped or zero-padded to the candidates' median length) and kept while
    MODEL still says c to their mean. Stores the composite (audio, member clips, the
    candidates tried, its own sufficient mask); the `compositionality` view gives
    |κ| / candidates. Needs `sigwh ingest --model MODEL` first.
    """
    from sigwarehouse.jobs import compose as job  # torch: not at CLI start-up

    path = warehouse_path()
    with store.opened(path, read_only=True) as con:
        store.require_current(con, path)
        plan = job.plan_compose(con, model, dataset=dataset, seed=seed, params_hash=params_hash)
    carry_out(
        plan,
        lambda p: job.run_compose(
            path, p, device=devices.default_device(device), progress=typer.echo
        ),
        dry_run=dry_run,
        say=typer.echo,
        nothing="every composite is stored",
    )


@friendly_errors
def transfer_label(
    model: Model,
    from_label: str = typer.Option(
        "fake", "--from", help="The class whose composite mask is applied."
    ),
    to_label: list[str] = typer.Option(
        [],
        "--to",
        metavar="CLASS",
        help="Apply it to the clips MODEL gives this class (repeatable; "
        "default: every other class).",
    ),
    mask: str = typer.Option(
        "sufficient",
        help="sufficient: the composite's own freqrex sufficient mask; members: the union "
        "of its members' sufficient masks.",
    ),
    dataset: Dataset = None,
    seed: int = typer.Option(0, help="The composite's seed (as given to `sigwh compose`)."),
    params_hash: str | None = typer.Option(
        None,
        help="The explanations' parameter set (default: MODEL's only one; needed when it has "
        "several).",
    ),
    device: Device = None,
    dry_run: DryRun = False,
) -> None:
    """Apply the FROM composite's mask to the clips MODEL gives TO, and ask MODEL again.

    Each clip keeps only the frequencies the mask keeps (mapped by Hz onto its own rfft
    bins); nothing else changes. The `label_transfer` view gives the share of clips that
    MODEL then gives the FROM class. Needs `sigwh compose --model MODEL` first.
    """
    from sigwarehouse.jobs import label_transfer as job  # torch: not at CLI start-up

    path = warehouse_path()
    with store.opened(path, read_only=True) as con:
        store.require_current(con, path)
        plan = job.plan_transfer(
            con, model, from_label=from_label, to_labels=to_label or None, mask=mask,
            dataset=dataset, seed=seed, params_hash=params_hash,
        )  # fmt: skip
    carry_out(
        plan,
        lambda p: job.run_transfer(path, p, device=devices.default_device(device)),
        dry_run=dry_run,
        say=typer.echo,
        nothing="every clip is stored",
    )


@friendly_errors
def asr(
    asr_model: str = typer.Option(
        "pocketsphinx",
        "--asr",
        help="pocketsphinx (offline English model bundled with it), or a local directory "
        "holding a Hugging Face Whisper checkpoint.",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Only this source model's explanations."
    ),
    dataset: Dataset = None,
    limit: int | None = typer.Option(
        None, help="Only the first N explained clips, by id (default: every clip)."
    ),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="pocketsphinx processes decoding at once (default: one per usable CPU core, "
        "up to 8, and one per 8 signals at most); 1 decodes in this process.",
        show_default=False,
    ),
    device: Device = None,
    dry_run: DryRun = False,
) -> None:
    """Transcribe original, sufficient, complete and inverse signals; score them with STOI.

    Stores each transcript (table `transcripts`) and each derived signal's STOI against
    its original clip (table `signal_stoi`); the ASR fidelity analysis of `sigwh report`
    compares every transcript with the original's (Levenshtein ratio). --device is
    Whisper's: pocketsphinx runs on the CPU whatever the machine has, in --workers
    processes.
    """
    from sigwarehouse.jobs import asr as job  # torch: not at CLI start-up

    path = warehouse_path()
    name = job.asr_name(asr_model)
    with store.opened(path, read_only=True) as con:
        store.require_current(con, path)
        plan = job.plan_asr(con, name, model=model, dataset=dataset, limit=limit)
    # pocketsphinx runs on the CPU whatever the machine has
    on = "cpu" if name == job.DEFAULT_ASR else None
    carry_out(
        plan,
        lambda p: job.run_asr(
            path, p, device=on or devices.default_device(device), workers=workers
        ),
        dry_run=dry_run,
        say=typer.echo,
        nothing="every transcript is stored",
    )
