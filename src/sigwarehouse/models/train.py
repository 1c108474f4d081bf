"""Training and evaluation of the zoo on the corpus (CPU, minutes, fixed seeds).

`train_one(task, id, ...)` trains one zoo model on `<corpus>/<task>/train` with the
seeded augmentation of `augment.py`, scores the saved checkpoint on
`<corpus>/<task>/eval` exactly as ingestion will load it, and writes it: a Hugging Face
family as the save_pretrained directory `data/zoo/<task>/<id>/` (see `hfzoo.py`), the
1-D CNN as `data/zoo/<task>/<id>.safetensors` + `.json` (see `zoo.py`).
`write_catalog` then rewrites the zoo block of `ingest/models/<task>.toml`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from sigwarehouse.errors import SigwhError
from sigwarehouse.models import augment, hfzoo, zoo
from sigwarehouse.models.features import fit_length
from sigwarehouse.models.labels import sidecar_path
from sigwarehouse.models.loader import load_classifier

PREFIX = {"emotion": "vc", "genre": "mc", "spoof": "sp"}
AUDIO_SUFFIXES = (".flac", ".wav")


_WAVE_TRANSFORMER = {
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
}


@dataclass(frozen=True)
class Spec:
    """How to build and train one zoo slot (the id is task prefix + slot number).

    `family` is a Hugging Face family of `hfzoo` (saved as a save_pretrained directory,
    catalog kind "hf") or `cnn1d-wave` (the project's own CNN, kind "zoo").
    """

    family: str
    hparams: dict[str, Any]
    lr: float
    epochs: int
    description: str
    task_epochs: dict[str, int] = field(default_factory=dict)  # where a task needs more

    def epochs_for(self, task: str) -> int:
        return self.task_epochs.get(task, self.epochs)

    @property
    def kind(self) -> str:
        return "hf" if self.family in hfzoo.FAMILIES else "zoo"


# One family per slot. Slot 2 was a 2-D log-mel CNN; HuBERT took it, at a forward cost no
# higher than the CNN's. The 1-D CNN stays as the fifth family (the cheapest forward).
SPECS: dict[int, Spec] = {
    1: Spec("cnn1d-wave", {"width": 16}, 3e-3, 30, "1-D CNN on the raw waveform"),
    2: Spec(
        "hubert-tiny",
        # DistilHuBERT-like depth (2 layers), tiny width, a wider feed-forward than slot 3
        {**_WAVE_TRANSFORMER, "intermediate_size": 192},
        2e-3,
        35,
        "HuBERT (DistilHuBERT-sized) on the normalised waveform",
    ),
    3: Spec(
        "w2v2-tiny",
        dict(_WAVE_TRANSFORMER),
        2e-3,
        35,
        "Wav2Vec2 transformer on the normalised waveform",
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
            "max_length": 100 * hfzoo.WINDOW_S,
            "num_mel_bins": 128,
        },
        1e-3,
        30,
        "Audio Spectrogram Transformer on 128-bin Kaldi fbank (4 s)",
        # it underfits: emotion 0.74 on eval after 30 epochs (with the full EQ), 0.84 after
        # 45; spoof 0.70 after 30
        task_epochs={"emotion": 60, "spoof": 60},
    ),
    5: Spec(
        "whisper-enc",
        {
            "num_mel_bins": 80,
            "d_model": 64,
            "encoder_layers": 3,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 128,
            "max_source_positions": 50 * hfzoo.WINDOW_S,
            "classifier_proj_size": 64,
        },
        2e-3,
        30,
        "Whisper encoder on 80-bin log-mel (4 s)",
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
    eq_scale: float = 1.0,
    log=print,
) -> torch.nn.Module:
    """Train `model` in place with AdamW and a warm-up + cosine schedule; return it in eval mode.

    Every batch is augmented (`augment.augment`, EQ depth `eq_scale`), seeded by `seed`.
    """
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
            logits = model(augment.augment(x, gen, eq_scale))
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


def checkpoint_path(zoo_dir: str | Path, task: str, model_id: str) -> Path:
    """Where a zoo model lives: a directory for a Hugging Face family, else a file."""
    spec = spec_of(model_id)
    base = Path(zoo_dir) / task / model_id
    return base if spec.kind == "hf" else base.with_suffix(".safetensors")


def _remove_other_format(zoo_dir: Path, task: str, model_id: str, kind: str) -> None:
    """Delete a slot's checkpoint of the other format, so a slot has exactly one."""
    base = zoo_dir / task / model_id
    if kind == "hf":
        for stale in (base.with_suffix(".safetensors"), base.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    elif base.is_dir():
        shutil.rmtree(base)


def _build(spec: Spec, labels: list[str], sample_rate: int) -> torch.nn.Module:
    if spec.kind == "hf":
        model, extractor = hfzoo.build(spec.family, labels, spec.hparams, sample_rate)
        return hfzoo.WaveformClassifier(model, extractor)
    return zoo.build_model(spec.family, len(labels), spec.hparams)


def _save(path: Path, net: torch.nn.Module, meta: dict[str, Any]) -> None:
    if isinstance(net, hfzoo.WaveformClassifier):
        hfzoo.save(path, net, meta)
    else:
        zoo.save_checkpoint(path, net, meta)


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
    """Train, save and score one zoo model; returns its Result (meta as saved)."""
    spec = spec_of(model_id)
    epochs = spec.epochs_for(task) if epochs is None else epochs
    eq_scale = augment.TASK_EQ_SCALE.get(task, 1.0)
    torch.manual_seed(seed)
    net = _build(spec, labels, sample_rate)
    params = hfzoo.count_params(net)
    log(f"{model_id}: {spec.family}, {params} parameters, {epochs} epochs")
    start = time.perf_counter()
    fit(net, *train, epochs=epochs, lr=spec.lr, seed=seed, eq_scale=eq_scale, log=log)
    seconds = time.perf_counter() - start
    meta = {
        "id": model_id,
        "task": task,
        "family": spec.family,
        "arch": spec.family,  # the key the "sigwh-zoo/1" checkpoint format builds from
        "description": spec.description,
        "hparams": spec.hparams,
        "labels": labels,
        "sample_rate": sample_rate,
        "params": params,
        "train": {
            "seed": seed,
            "epochs": epochs,
            "lr": spec.lr,
            "clips": len(train[1]),
            "augmentation": "shift, EQ/band-limit, gain, pink noise (models/augment.py)",
            "eq_scale": eq_scale,
        },
        "train_seconds": round(seconds, 1),
    }
    zoo_dir = Path(zoo_dir)
    path = checkpoint_path(zoo_dir, task, model_id)
    _remove_other_format(zoo_dir, task, model_id, spec.kind)
    _save(path, net, meta)
    if evaluation is not None:
        # score the saved files as ingestion will load them, so the figure is reproducible
        clf = load_classifier(spec.kind, path, labels)
        meta["accuracy"] = round(accuracy(clf, *evaluation), 4)
        meta["eval_clips"] = len(evaluation[1])
        _save(path, net, meta)
        log(f"{model_id}: eval accuracy {meta['accuracy']:.3f} ({seconds:.0f} s training)")
    return Result(model_id, path, meta)


def throughput(classifier, waves: list[np.ndarray], batch: int = 64, seconds: float = 3.0) -> float:
    """Forward clips per second at `batch` clips of 2 s (eval clips looped and fitted)."""
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
    """Accuracy, recorded accuracy, parameters, weight size and throughput of one model.

    `checkpoint` is a zoo directory (Hugging Face family) or a .safetensors file (CNN).
    """
    if checkpoint.is_dir():
        clf, meta = load_classifier("hf", checkpoint, labels, device=device), read_meta(checkpoint)
        size = hfzoo.weight_bytes(checkpoint)
    else:
        clf = load_classifier("zoo", checkpoint, labels, device=device)
        meta, size = clf.meta, checkpoint.stat().st_size
    return {
        "family": meta.get("family", meta.get("arch")),
        "params": meta["params"],
        "kb": size / 1024,
        "accuracy": accuracy(clf, *split),
        "recorded": meta.get("accuracy"),
        "clips_per_s": throughput(clf, split[0], batch, seconds),
    }


def read_meta(checkpoint: str | Path) -> dict[str, Any]:
    """The metadata of a zoo model: sigwh_zoo.json of a directory, or a file's sidecar."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return hfzoo.read_meta(checkpoint)
    return json.loads(sidecar_path(checkpoint).read_text())


def read_sidecars(zoo_dir: str | Path, task: str) -> list[dict[str, Any]]:
    """The metadata of every zoo model of a task (directories and files), in id order."""
    root = Path(zoo_dir, task)
    paths = [*root.glob("*.json"), *root.glob(f"*/{hfzoo.META_FILE}")]
    metas = [json.loads(p.read_text()) for p in paths]
    return sorted(metas, key=lambda m: (len(m["id"]), m["id"]))


# The zoo's weights are trained here, from the project's own corpus: the project's licence.
ZOO_LICENSE = "MIT"
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
    lines = [BEGIN_ZOO]
    for m in metas:
        family = m.get("family", m["arch"])
        # the files decide: a sidecar of the CNN's format, else a Hugging Face directory
        kind = "zoo" if m.get("format") == zoo.FORMAT else "hf"
        where = checkpoint_dir / m["task"] / m["id"]
        target = where if kind == "hf" else where.with_suffix(".safetensors")
        ref = os.path.relpath(target, toml_dir)
        lines += ["", f"# {m.get('description', family)}", "[[model]]"]
        entry = {
            "id": m["id"],
            "task": m["task"],
            "kind": kind,
            # an hf ref must look like a path ("./..." or "../...") or it is taken for a hub id
            "ref": Path(ref).as_posix() if ref.startswith(".") else f"./{Path(ref).as_posix()}",
            "backbone": family,
            "params": m["params"],
            "labels": m["labels"],
        }
        if "accuracy" in m:
            entry["accuracy"] = m["accuracy"]
        if "eval_clips" in m:
            entry["accuracy_n"] = m["eval_clips"]
        entry["license"] = ZOO_LICENSE
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
