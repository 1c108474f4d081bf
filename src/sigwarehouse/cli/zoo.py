"""`sigwh zoo`: train and evaluate the project's own small classifiers.

Thin commands over `sigwarehouse.models.train`; torch is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sigwarehouse.cli.common import catalog_dir, friendly_errors

zoo_app = typer.Typer(
    help="Train and evaluate the zoo: small classifiers of different families per task.",
    no_args_is_help=True,
)

TASK_HELP = "Task: emotion, genre or spoof."
MODELS_HELP = "Comma-separated zoo ids (e.g. vc1,vc3) or 'all'."


def _ids(task: str, models: str) -> list[str]:
    from sigwarehouse.models.train import model_ids  # torch: not at CLI start-up

    known = model_ids(task)
    if models == "all":
        return known
    ids = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in ids if m not in known]
    if unknown:
        raise typer.BadParameter(f"{unknown} are not {task} zoo ids {known}", param_hint="--model")
    return ids


@zoo_app.command()
@friendly_errors
def train(
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    models: str = typer.Option("all", "--model", help=MODELS_HELP),
    seed: int = typer.Option(0, help="Random seed (weights, batches, augmentation)."),
    epochs: int | None = typer.Option(None, help="Epochs (default: each model's own)."),
    data: Path = typer.Option(Path("data/corpus"), help="Corpus root: <data>/<task>/{train,eval}."),
    out: Path = typer.Option(Path("data/zoo"), help="Where checkpoints go: <out>/<task>/<id>."),
    catalog: Path | None = typer.Option(None, help="Catalog folder (default ./ingest)."),
    threads: int = typer.Option(1, help="CPU threads for torch (1 is best on a shared machine)."),
) -> None:
    """Train zoo models on the train split, score them on the eval split, update the catalog."""
    import torch  # torch: only once the command runs

    from sigwarehouse.models import train as tr  # torch: not at CLI start-up

    torch.set_num_threads(threads)
    ids = _ids(task, models)
    cat = catalog_dir(catalog)
    info = tr.task_info(cat / "tasks.toml", task)
    labels, sr = list(info["labels"]), int(info["sample_rate"])
    train_split = tr.load_split(data / task / "train", labels, sr)
    eval_dir = data / task / "eval"
    eval_split = tr.load_split(eval_dir, labels, sr) if eval_dir.is_dir() else None
    typer.echo(f"{task}: {len(train_split[1])} training clips, labels {labels}")
    for model_id in ids:
        tr.train_one(
            task,
            model_id,
            labels,
            sr,
            train_split,
            eval_split,
            out,
            seed=seed,
            epochs=epochs,
            log=typer.echo,
        )
    path = tr.write_catalog(task, out, cat / "models" / f"{task}.toml")
    typer.echo(f"catalog: {path}")


@zoo_app.command()
@friendly_errors
def evaluate(
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    models: str = typer.Option("all", "--model", help=MODELS_HELP),
    data: Path = typer.Option(Path("data/corpus"), help="Corpus root: <data>/<task>/eval."),
    out: Path = typer.Option(Path("data/zoo"), help="Checkpoint root: <out>/<task>/<id>."),
    catalog: Path | None = typer.Option(None, help="Catalog folder (default ./ingest)."),
    device: str = typer.Option("cpu", help="torch device, e.g. cpu or cuda."),
    batch: int = typer.Option(64, help="Batch size of the throughput measurement."),
    seconds: float = typer.Option(3.0, help="Seconds spent timing each model's forward."),
) -> None:
    """Print each zoo model's eval accuracy, parameters, size and forward throughput."""
    from sigwarehouse.models import train as tr  # torch: not at CLI start-up

    info = tr.task_info(catalog_dir(catalog) / "tasks.toml", task)
    labels, sr = list(info["labels"]), int(info["sample_rate"])
    split = tr.load_split(data / task / "eval", labels, sr)
    typer.echo("id      family          params  size_kB  accuracy  recorded  clips/s")
    for model_id in _ids(task, models):
        checkpoint = tr.checkpoint_path(out, task, model_id)
        r = tr.evaluate_one(checkpoint, labels, split, device, batch, seconds)
        recorded = r["recorded"] if r["recorded"] is not None else float("nan")
        typer.echo(
            f"{model_id:<7} {r['family']:<14} {r['params']:>7} {r['kb']:>8.0f} "
            f"{r['accuracy']:>9.3f} {recorded:>9.3f} {r['clips_per_s']:>8.1f}"
        )
