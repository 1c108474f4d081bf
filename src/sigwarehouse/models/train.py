"""Training and evaluation of the zoo on the corpus (CPU, minutes, fixed seeds).

`train_zoo(task, ...)` trains the task's zoo models on `<corpus>/<task>/train`, scores
each saved checkpoint on `<corpus>/<task>/eval` exactly as ingestion will load it, and
writes `data/zoo/<task>/<id>.safetensors` (+ `.json`) and the zoo block of
`ingest/models/<task>.toml`.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import zoo

PREFIX = {"emotion": "vc", "genre": "mc", "spoof": "sp"}
AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass(frozen=True)
class Spec:
    """How to build and train one zoo slot (the id is task prefix + slot number)."""

    arch: str
    hparams: dict[str, Any]
    lr: float
    epochs: int
    description: str


# One family per slot, of different sizes (roughly 25k to 200k parameters).
SPECS: dict[int, Spec] = {
    1: Spec("cnn1d-wave", {"width": 16}, 3e-3, 30, "1-D CNN on the raw waveform"),
    2: Spec("cnn2d-logmel", {"width": 16, "n_mels": 64}, 3e-3, 30, "2-D CNN on 64-bin log-mel"),
    3: Spec(
        "w2v2-tiny",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "conv_dim": [32] * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4,
            "classifier_proj_size": 64,
            "layerdrop": 0.0,
            # tiny and trained from scratch: it underfits with the default regularisation
            "mask_time_prob": 0.0,
            "hidden_dropout": 0.05,
            "attention_dropout": 0.05,
            "activation_dropout": 0.05,
        },
        2e-3,
        40,
        "Wav2Vec2-style transformer on the normalised waveform",
    ),
    4: Spec(
        "ast-tiny",
        {
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 192,
            "patch_size": 16,
            "frequency_stride": 16,
            "time_stride": 10,
            "max_length": 400,
            "num_mel_bins": 128,
        },
        1e-3,
        30,
        "AST-style transformer on 128-bin Kaldi fbank (4 s)",
    ),
    5: Spec(
        "whisper-enc",
        {
            "num_mel_bins": 80,
            "d_model": 64,
            "encoder_layers": 3,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 128,
            "max_source_positions": 200,
            "classifier_proj_size": 64,
        },
        1e-3,
        30,
        "Whisper-encoder-style transformer on 80-bin log-mel (4 s)",
    ),
}


def model_ids(task: str) -> list[str]:
    """The zoo ids of a task in slot order, e.g. vc1..vc5; SigwhError for an unknown task."""
    if task not in PREFIX:
        raise SigwhError(f"unknown task {task!r}; zoo tasks are {sorted(PREFIX)}")
    return [f"{PREFIX[task]}{slot}" for slot in SPECS]


def spec_of(model_id: str) -> Spec:
    """The Spec of a zoo id such as 'vc3'; SigwhError if it names no slot."""
    slot = model_id.lstrip("abcdefghijklmnopqrstuvwxyz")
    if not slot.isdigit() or int(slot) not in SPECS:
        raise SigwhError(f"unknown zoo id {model_id!r}; slots are 1..{len(SPECS)}")
    return SPECS[int(slot)]


def task_info(tasks_toml: str | Path, task: str) -> dict[str, Any]:
    """The task's table from ingest/tasks.toml (labels, sample_rate, ...)."""
    tasks = tomllib.loads(Path(tasks_toml).read_text())
    if task not in tasks:
        raise SigwhError(f"task {task!r} not in {tasks_toml}; tasks there: {sorted(tasks)}")
    return tasks[task]


def load_split(root: str | Path, labels: list[str], sample_rate: int) -> tuple[list, list[int]]:
    """Read `<root>/<label>/*.flac|wav` -> (waveforms as float32 arrays, label indices).

    Files are taken in sorted order. Raises SigwhError for a missing folder, a folder
    that is not a task label, or audio at another sample rate.
    """
    import soundfile as sf

    root = Path(root)
    if not root.is_dir():
        raise SigwhError(f"no split at {root} (build the corpus with `sigwh corpus build`)")
    stray = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in labels)
    if stray:
        raise SigwhError(f"{root}: folders {stray} are not task labels {labels}")
    waves, ys = [], []
    for y, label in enumerate(labels):
        for path in sorted((root / label).glob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            x, sr = sf.read(path, dtype="float32", always_2d=True)
            if sr != sample_rate:
                raise SigwhError(f"{path}: sample rate {sr}, expected {sample_rate}")
            waves.append(x.mean(axis=1))
            ys.append(y)
    if not waves:
        raise SigwhError(f"{root}: no audio files under {labels}")
    return waves, ys


def _batches(
    waves: list[np.ndarray], ys: list[int], batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed batches, each clip randomly cropped to the batch's shortest clip."""
    lengths = np.array([len(w) for w in waves], dtype=float)
    order = np.argsort(lengths * rng.uniform(0.85, 1.15, len(waves)))  # jitter the buckets
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for g in rng.permutation(len(groups)):
        idx = groups[g]
        n = int(min(len(waves[i]) for i in idx))
        crops = []
        for i in idx:
            start = int(rng.integers(0, len(waves[i]) - n + 1))
            crops.append(waves[i][start : start + n])
        yield torch.from_numpy(np.stack(crops)), torch.tensor([ys[i] for i in idx])


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light augmentation: ±2 dB gain (level is a class cue), circular shift, faint noise."""
    b, n = x.shape
    gain = 10 ** ((torch.rand(b, 1, generator=gen) * 4 - 2) / 20)
    shift = torch.randint(0, max(1, n // 10), (b,), generator=gen)
    x = torch.stack([torch.roll(x[i], int(shift[i])) for i in range(b)]) * gain
    rms = x.square().mean(-1, keepdim=True).sqrt()
    snr_db = 25 + 20 * torch.rand(b, 1, generator=gen)
    noisy = torch.rand(b, 1, generator=gen) < 0.5
    noise = torch.randn(x.shape, generator=gen) * rms * 10 ** (-snr_db / 20)
    return x + noise * noisy


@dataclass
class Result:
    """What training one zoo model produced."""

    model_id: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def fit(
    model: torch.nn.Module,
    waves: list[np.ndarray],
    ys: list[int],
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 16,
    log=print,
) -> torch.nn.Module:
    """Train `model` in place with AdamW and a warm-up + cosine schedule; return it in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    steps = epochs * math.ceil(len(waves) / batch_size)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))),
    )
    for epoch in range(epochs):
        model.train()
        total, correct, n = 0.0, 0, 0
        for x, y in _batches(waves, ys, batch_size, rng):
            logits = model(_augment(x, gen))
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            n += len(y)
        if epoch == epochs - 1 or epoch % 5 == 0:
            log(f"  epoch {epoch + 1}/{epochs} loss {total / n:.3f} train-acc {correct / n:.3f}")
    return model.eval()


def accuracy(classifier, waves: list[np.ndarray], ys: list[int]) -> float:
    """Share of clips whose top-1 task label is the true one (clips scored one by one)."""
    hits = 0
    for x, y in zip(waves, ys, strict=True):
        probs = classifier(torch.from_numpy(x).unsqueeze(0).to(classifier.device))
        hits += int(probs.argmax(-1).item() == y)
    return hits / len(ys)


def train_one(
    task: str,
    model_id: str,
    labels: list[str],
    sample_rate: int,
    train: tuple[list, list[int]],
    evaluation: tuple[list, list[int]] | None,
    zoo_dir: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    log=print,
) -> Result:
    """Train, save and score one zoo model; returns its Result (meta as in the sidecar)."""
    from sigwarehouse.models.loader import load_classifier

    spec = spec_of(model_id)
    epochs = spec.epochs if epochs is None else epochs
    torch.manual_seed(seed)
    model = zoo.build_model(spec.arch, len(labels), spec.hparams)
    log(f"{model_id}: {spec.arch}, {zoo.count_params(model)} parameters, {epochs} epochs")
    start = time.perf_counter()
    fit(model, *train, epochs=epochs, lr=spec.lr, seed=seed, log=log)
    seconds = time.perf_counter() - start
    meta = {
        "id": model_id,
        "task": task,
        "arch": spec.arch,
        "description": spec.description,
        "hparams": spec.hparams,
        "labels": labels,
        "sample_rate": sample_rate,
        "params": zoo.count_params(model),
        "train": {"seed": seed, "epochs": epochs, "lr": spec.lr, "clips": len(train[1])},
        "train_seconds": round(seconds, 1),
    }
    path = zoo_dir / task / f"{model_id}.safetensors"
    zoo.save_checkpoint(path, model, meta)
    if evaluation is not None:
        # score the saved file as ingestion will load it, so the figure is reproducible
        clf = load_classifier("zoo", path, labels)
        meta["accuracy"] = round(accuracy(clf, *evaluation), 4)
        meta["eval_clips"] = len(evaluation[1])
        zoo.save_checkpoint(path, model, meta)
        log(f"{model_id}: eval accuracy {meta['accuracy']:.3f} ({seconds:.0f} s training)")
    return Result(model_id, path, meta)


def throughput(classifier, waves: list[np.ndarray], batch: int = 64, seconds: float = 3.0) -> float:
    """Forward clips per second at `batch` clips of 2 s (eval clips looped and fitted)."""
    from sigwarehouse.models.features import fit_length

    n = 2 * classifier.sample_rate
    rows = [torch.from_numpy(waves[i % len(waves)]) for i in range(batch)]
    x = fit_length(torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), n)
    x = x.to(classifier.device)
    classifier(x)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        classifier(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        done += batch
    return done / (time.perf_counter() - start)


def evaluate_one(
    checkpoint: Path,
    labels: list[str],
    split: tuple[list, list[int]],
    device: str = "cpu",
    batch: int = 64,
    seconds: float = 3.0,
) -> dict[str, Any]:
    """Accuracy, recorded accuracy, parameters, file size and throughput of one checkpoint."""
    from sigwarehouse.models.loader import load_classifier

    clf = load_classifier("zoo", checkpoint, labels, device=device)
    return {
        "arch": clf.meta["arch"],
        "params": clf.meta["params"],
        "kb": checkpoint.stat().st_size / 1024,
        "accuracy": accuracy(clf, *split),
        "recorded": clf.meta.get("accuracy"),
        "clips_per_s": throughput(clf, split[0], batch, seconds),
    }


def read_sidecars(zoo_dir: str | Path, task: str) -> list[dict[str, Any]]:
    """The sidecar metadata of every checkpoint of a task, in id order."""
    paths = sorted(Path(zoo_dir, task).glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    return [json.loads(p.read_text()) for p in paths]


BEGIN_ZOO = "# --- zoo models: written by `sigwh zoo train`; edits inside this block are lost ---"
END_ZOO = "# --- end of zoo models ---"


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def zoo_block(metas: list[dict[str, Any]], checkpoint_dir: Path, toml_dir: Path) -> str:
    """The catalog TOML text for zoo models described by sidecar metadata."""
    import os

    lines = [BEGIN_ZOO]
    for m in metas:
        ref = os.path.relpath(checkpoint_dir / m["task"] / f"{m['id']}.safetensors", toml_dir)
        lines += ["", f"# {m.get('description', m['arch'])}", "[[model]]"]
        entry = {
            "id": m["id"],
            "task": m["task"],
            "kind": "zoo",
            "ref": Path(ref).as_posix(),
            "backbone": m["arch"],
            "params": m["params"],
            "labels": m["labels"],
        }
        if "accuracy" in m:
            entry["accuracy"] = m["accuracy"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
    lines.append(END_ZOO)
    return "\n".join(lines) + "\n"


def write_catalog(task: str, zoo_dir: str | Path, models_toml: str | Path) -> Path:
    """Rewrite the zoo block of `ingest/models/<task>.toml` from the task's sidecars.

    Everything outside the block (hand-written entries, e.g. disabled Hugging Face
    models) is kept; the block is appended when the file has none. Returns the path.
    """
    models_toml = Path(models_toml)
    block = zoo_block(
        read_sidecars(zoo_dir, task), Path(zoo_dir).resolve(), models_toml.parent.resolve()
    )
    old = models_toml.read_text() if models_toml.is_file() else ""
    if BEGIN_ZOO in old and END_ZOO in old:
        head, rest = old.split(BEGIN_ZOO, 1)
        tail = rest.split(END_ZOO, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block
    tomllib.loads(text)  # never write an unreadable catalog
    models_toml.parent.mkdir(parents=True, exist_ok=True)
    models_toml.write_text(text)
    return models_toml
