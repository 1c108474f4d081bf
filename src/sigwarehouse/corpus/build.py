"""Build the demo corpus: plan every clip from the seed, render in worker processes, write.

Every clip has its own seed derived from (corpus seed, task, split, label, index), so a
clip's bytes depend only on those, not on the worker count or the order of rendering.
Layout: <out>/<task>/<split>/<label>/<label>_NNN.flac, the eval manifest at
<out>/manifest.csv (committed) and a train manifest at <out>/<task>/train/manifest.csv.
"""

from __future__ import annotations

import csv
import hashlib
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigwarehouse.corpus import music, speech, spoof
from sigwarehouse.corpus.debian import MissingPackagesError, missing_packages
from sigwarehouse.corpus.waveform import write_flac

TASKS: dict[str, tuple[str, ...]] = {
    "emotion": speech.LABELS,
    "genre": music.LABELS,
    "spoof": spoof.LABELS,
}
DEFAULT_TRAIN = {"emotion": 100, "genre": 100, "spoof": 150}
DEFAULT_EVAL = {"emotion": 10, "genre": 10, "spoof": 25}
SPLITS = ("train", "eval")
MANIFEST_FIELDS = ("task", "split", "label", "path", "source", "seed", "duration_s", "sha256")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip."""

    task: str
    split: str
    label: str
    index: int
    seed: int

    @property
    def path(self) -> str:
        return f"{self.task}/{self.split}/{self.label}/{self.label}_{self.index:03d}.flac"


def clip_seed(seed: int, task: str, split: str, label: str, index: int) -> int:
    """The seed of one clip, a stable function of the corpus seed and the clip's identity."""
    key = [seed, zlib.crc32(task.encode()), SPLITS.index(split), zlib.crc32(label.encode()), index]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def plan_clips(task: str, split: str, n_per_class: int, seed: int) -> list[ClipSpec]:
    """The specs of n_per_class clips of every label of task; KeyError for an unknown task."""
    return [
        ClipSpec(task, split, label, i, clip_seed(seed, task, split, label, i))
        for label in TASKS[task]
        for i in range(n_per_class)
    ]


def render_clip(spec: ClipSpec) -> tuple[np.ndarray, str]:
    """The 16 kHz waveform of one clip and a note of its source."""
    rng = np.random.default_rng(spec.seed)
    if spec.task == "emotion":
        return speech.render(speech.plan(spec.label, spec.split, rng), spec.split, rng)
    if spec.task == "genre":
        params = music.plan(spec.label, spec.split, rng)
        return music.render(spec.label, params, spec.split, rng)
    if spec.task == "spoof":
        return spoof.render(spoof.plan(spec.label, spec.split, rng), spec.split, rng)
    raise KeyError(spec.task)


def _write(job: tuple[ClipSpec, str]) -> dict:
    spec, out_dir = job
    wave, source = render_clip(spec)
    path = Path(out_dir) / spec.path
    duration = write_flac(path, wave)
    return {
        "task": spec.task,
        "split": spec.split,
        "label": spec.label,
        "path": spec.path,
        "source": source,
        "seed": spec.seed,
        "duration_s": f"{duration:.4f}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def read_manifest(path: Path) -> list[dict]:
    """Rows of a manifest CSV (empty list when the file does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_manifest(path: Path, rows: list[dict]) -> None:
    """Write rows to a manifest CSV with the standard columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _clear(split_dir: Path) -> None:
    # Remove only what a previous build wrote, so counts and the manifest stay in step.
    for f in split_dir.glob("*/*.flac"):
        f.unlink()
    (split_dir / "manifest.csv").unlink(missing_ok=True)


def build_corpus(
    out_dir: str | Path = "data/corpus",
    seed: int = 0,
    n_train_per_class: int | None = None,
    n_eval_per_class: int | None = None,
    tasks: list[str] | None = None,
    jobs: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Render the corpus for tasks (default: all) and return the manifest rows written.

    n_*_per_class of None means the per-task default (DEFAULT_TRAIN / DEFAULT_EVAL); 0
    skips that split and leaves any existing files of it alone. A built split replaces
    the previous one. The eval rows of the built tasks replace theirs in
    <out>/manifest.csv; other tasks' rows are kept. progress(task_split, done, total)
    is called as clips finish. Refuses unknown tasks (ValueError) and raises
    MissingPackagesError naming the Debian packages that are not installed.
    """
    tasks = list(tasks or TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {list(TASKS)}")
    missing = missing_packages(tasks)
    if missing:
        raise MissingPackagesError(missing)
    out = Path(out_dir)
    jobs = jobs or min(2, os.cpu_count() or 1)
    written: list[dict] = []
    eval_rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for task in tasks:
            for split in SPLITS:
                n = n_train_per_class if split == "train" else n_eval_per_class
                n = (DEFAULT_TRAIN if split == "train" else DEFAULT_EVAL)[task] if n is None else n
                if n <= 0:
                    continue
                _clear(out / task / split)
                specs = plan_clips(task, split, n, seed)
                rows = []
                for row in pool.map(_write, [(s, str(out)) for s in specs], chunksize=4):
                    rows.append(row)
                    if progress:
                        progress(f"{task}/{split}", len(rows), len(specs))
                if split == "train":
                    write_manifest(out / task / "train" / "manifest.csv", rows)
                else:
                    eval_rows += rows
                written += rows
    if eval_rows:
        built = {r["task"] for r in eval_rows}
        kept = [r for r in read_manifest(out / "manifest.csv") if r["task"] not in built]
        order = {t: i for i, t in enumerate(TASKS)}
        merged = sorted(kept + eval_rows, key=lambda r: (order[r["task"]], r["path"]))
        write_manifest(out / "manifest.csv", merged)
    return written
