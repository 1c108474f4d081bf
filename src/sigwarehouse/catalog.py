"""The declarative catalog: load and validate `ingest/*.toml`, upsert it into the warehouse.

Layout (see ingest/README.md): `tasks.toml` (one table per task), `datasets/*.toml` (one
dataset per file) and `models/*.toml` (`[[model]]` arrays). Every entry is validated as
a typed record and every error names the file and the key, and says what to change.

Why SQLModel *without* table mode: the records below are `SQLModel` classes used for what
they do well here, pydantic validation (strict types, unknown keys refused, constraints).
SQLModel's table mode would need a SQLAlchemy dialect for DuckDB (duckdb_engine, a
further dependency whose support of DuckDB's list columns and sequences lags DuckDB) and
would declare the schema a second time, next to the migrations in sql/schema that are
its single source. So the records are validated in Python and written with plain
parameterised DuckDB statements, in one transaction.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlmodel import SQLModel

from sigwarehouse.errors import SigwhError
from sigwarehouse.models.factory import split_ref
from sigwarehouse.models.labels import LabelMappingError, model_labels, resolve_label_map
from sigwarehouse.store import transaction


class CatalogError(SigwhError):
    """An invalid catalog file; the message names the file and the key."""


_STRICT = ConfigDict(extra="forbid", strict=True)


def _unique(values: list[str], what: str) -> list[str]:
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique; repeated: {dupes}")
    return values


class TaskEntry(SQLModel):
    """A task: its ordered labels (probability vectors follow this order) and clip policy."""

    model_config = _STRICT
    name: str
    labels: list[str] = Field(min_length=2)
    sample_rate: int = Field(default=16000, gt=0)
    min_duration_s: float = Field(default=0.5, ge=0)

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str]) -> list[str]:
        return _unique(v, "labels")


class DatasetEntry(SQLModel):
    """A dataset: a folder of audio files of one task and how their labels are read."""

    model_config = _STRICT
    name: str
    task: str
    root: str
    labels_from: Literal["folder", "csv", "regex"] = "folder"
    csv: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _spec_matches_mode(self) -> DatasetEntry:
        if self.labels_from == "csv" and not self.csv:
            raise ValueError('labels_from = "csv" needs csv = "<file of path,label rows>"')
        if self.labels_from == "regex":
            if not self.regex:
                raise ValueError('labels_from = "regex" needs regex = "...(?P<label>...)..."')
            try:
                pattern = re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from exc
            if "label" not in pattern.groupindex:
                raise ValueError(f"regex {self.regex!r} needs a named group (?P<label>...)")
        extra = {"csv": self.csv, "regex": self.regex}
        extra.pop(self.labels_from, None)
        stray = [k for k, v in extra.items() if v is not None]
        if stray:
            raise ValueError(f"{stray[0]} is only read with labels_from = {stray[0]!r}")
        return self

    @property
    def label_spec(self) -> str | None:
        return self.csv if self.labels_from == "csv" else self.regex


class ModelEntry(SQLModel):
    """A model of one task: adapter kind, reference, and how its outputs map to the task."""

    model_config = _STRICT
    id: str = Field(min_length=1)
    task: str
    kind: Literal["zoo", "hf", "python"]
    ref: str = Field(min_length=1)
    backbone: str | None = None
    params: int | None = Field(default=None, ge=0)
    labels: list[str] | None = Field(default=None, min_length=1)
    label_map: dict[str, str] | None = None
    accuracy: float | None = Field(default=None, ge=0, le=1)
    accuracy_n: int | None = Field(default=None, ge=1)  # clips `accuracy` was measured on
    license: str | None = Field(default=None, min_length=1)  # SPDX expression where one fits

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _unique(v, "labels")

    @field_validator("ref")
    @classmethod
    def _python_ref(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "python":
            split_ref(v)  # its ValueError names the form a python ref must have
        return v


@dataclass
class Catalog:
    """A validated catalog: entries keyed by name, with the file each came from.

    Paths are resolved: dataset roots and zoo/local model refs are absolute; a model's
    `labels` are filled in (from config.json or the zoo sidecar when left out) and
    `mapping` is its full model-label -> task-label map.
    """

    directory: Path
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> file


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries "(at line N, column M)".
        raise CatalogError(f"{path}: invalid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc


def _validate(cls: type[SQLModel], data: Any, where: Path, prefix: str = "") -> Any:
    """cls.model_validate(data); its errors become one CatalogError naming file and keys."""
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: key '{prefix.rstrip('.')}' must be a table")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        # An unknown key first: it is usually a misspelt one that is then also "missing".
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        raise CatalogError(f"{where}: " + "; ".join(_describe(e, prefix) for e in errors)) from exc


def _describe(err: Any, prefix: str) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    key = f"{prefix}{loc}".rstrip(".")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (ingest/README.md lists the keys each entry takes)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return f"key '{key}': {msg}" if key else msg


def _resolve(base: Path, ref: str) -> Path:
    return (base / Path(ref).expanduser()).resolve()


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or ref.endswith((".pt", ".pth", ".ckpt"))


def load(directory: str | Path) -> Catalog:
    """Read and validate the catalog in `directory` (tasks.toml, datasets/, models/).

    Returns a Catalog. Raises CatalogError, naming the file and the key, for invalid TOML
    (with its line), missing or mistyped keys, unknown keys, duplicate names, an unknown
    task, or a model whose labels do not map onto its task's labels.
    """
    directory = Path(directory)
    tasks_file = directory / "tasks.toml"
    if not tasks_file.is_file():
        raise CatalogError(
            f"{tasks_file}: not found; a catalog needs tasks.toml (ingest/README.md)"
        )
    cat = Catalog(directory=directory)
    for name, data in _read_toml(tasks_file).items():
        if not isinstance(data, dict):
            raise CatalogError(
                f"{tasks_file}: key {name!r}: must be a table ([{name}] labels = ...)"
            )
        entry = _validate(TaskEntry, {"name": name, **data}, tasks_file, f"{name}.")
        cat.tasks[name] = entry
        cat.sources["task", name] = tasks_file.relative_to(directory).as_posix()

    for path in sorted((directory / "datasets").glob("*.toml")):
        data = _read_toml(path)
        data.setdefault("name", path.stem)
        entry = _validate(DatasetEntry, data, path)
        _check_task(cat, entry.task, path, "task")
        _unique_name(cat, "dataset", entry.name, path, directory)
        entry.root = str(_resolve(path.parent, entry.root))
        cat.datasets[entry.name] = entry

    for path in sorted((directory / "models").glob("*.toml")):
        data = _read_toml(path)
        stray = [k for k in data if k != "model"]
        if stray:
            raise CatalogError(f"{path}: key {stray[0]!r}: unknown; models are [[model]] tables")
        entries = data.get("model", [])
        if not isinstance(entries, list):
            raise CatalogError(f"{path}: key 'model' must be an array of tables ([[model]])")
        for i, item in enumerate(entries):
            ident = item.get("id") if isinstance(item, dict) else None
            prefix = f"model[{i}]" + (f" (id {ident!r})" if ident else "") + "."
            entry = _validate(ModelEntry, item, path, prefix)
            _check_task(cat, entry.task, path, f"{prefix}task")
            _unique_name(cat, "model", entry.id, path, directory)
            _resolve_model(cat, entry, path, prefix)
            cat.models[entry.id] = entry
    return cat


def _check_task(cat: Catalog, task: str, path: Path, key: str) -> None:
    if task not in cat.tasks:
        raise CatalogError(
            f"{path}: key '{key}': unknown task {task!r}; tasks.toml defines {sorted(cat.tasks)}"
        )


def _unique_name(cat: Catalog, kind: str, name: str, path: Path, directory: Path) -> None:
    rel = path.relative_to(directory).as_posix()
    if (kind, name) in cat.sources:
        raise CatalogError(
            f"{path}: {kind} {name!r} is already defined in {cat.sources[kind, name]}; "
            "names must be unique"
        )
    cat.sources[kind, name] = rel


def _resolve_model(cat: Catalog, entry: ModelEntry, path: Path, prefix: str) -> None:
    """Make the ref absolute where it is a path, fill in and check labels, build the mapping."""
    local = _resolve(path.parent, entry.ref)
    # zoo refs are always paths; an hf ref is a path if it says so or exists, else a hub
    # id; a python ref is always module:factory.
    if entry.kind != "python" and (
        entry.kind == "zoo" or _looks_like_path(entry.ref) or local.exists()
    ):
        entry.ref = str(local)
    try:
        found = model_labels(entry.kind, entry.ref)
    except SigwhError as exc:
        if entry.labels is None:
            raise CatalogError(
                f"{path}: key '{prefix}labels': missing, and the model's files do not give "
                f"them ({exc}); list the model's output labels in its order"
            ) from exc
        found = None  # not downloaded or not trained yet: trust the catalog
    except (OSError, ValueError, KeyError) as exc:  # present but unreadable: say so
        raise CatalogError(
            f"{path}: key '{prefix}ref': cannot read the labels of {entry.ref}: {exc!r}"
        ) from exc
    if entry.labels is None:
        entry.labels = found
    elif found is not None and found != entry.labels:
        raise CatalogError(
            f"{path}: key '{prefix}labels': {entry.labels} disagrees with the model's own "
            f"labels {found} (from its files at {entry.ref}); copy the model's labels, in order"
        )
    task_labels = cat.tasks[entry.task].labels
    try:
        index = resolve_label_map(entry.labels, task_labels, entry.label_map)
    except LabelMappingError as exc:
        key = "label_map" if entry.label_map else "labels"
        raise CatalogError(f"{path}: key '{prefix}{key}': {exc}") from exc
    cat.mappings[entry.id] = {m: task_labels[i] for m, i in zip(entry.labels, index, strict=True)}


# --- writing into the warehouse -------------------------------------------------------------


@dataclass
class SyncSummary:
    """What `sync` did, per kind (task, dataset, model): names added, changed, unchanged,
    and names in the warehouse that the catalog no longer lists (kept, not deleted)."""

    added: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    unchanged: dict[str, list[str]] = field(default_factory=dict)
    stale: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        for kind in ("task", "dataset", "model"):
            parts = [
                f"{len(self.added.get(kind, []))} added",
                f"{len(self.changed.get(kind, []))} changed",
                f"{len(self.unchanged.get(kind, []))} unchanged",
            ]
            line = f"{kind}s: " + ", ".join(parts)
            if self.changed.get(kind):
                line += f" (changed: {', '.join(self.changed[kind])})"
            if self.stale.get(kind):
                line += f"; not in the catalog any more (kept): {', '.join(self.stale[kind])}"
            out.append(line)
        return out


_TABLES = {
    "task": (
        "tasks",
        "task",
        ["task", "labels", "sample_rate", "min_duration_s", "source_file"],
    ),
    "dataset": (
        "datasets",
        "dataset",
        ["dataset", "task", "root", "labels_from", "label_spec", "source_file"],
    ),
    "model": (
        "models",
        "model",
        [
            "model",
            "task",
            "kind",
            "ref",
            "backbone",
            "n_params",
            "labels",
            "label_map",
            "reported_accuracy",
            "reported_accuracy_n",
            "license",
            "source_file",
        ],
    ),
}


def _rows(cat: Catalog) -> dict[str, dict[str, tuple]]:
    src = cat.sources
    return {
        "task": {
            t.name: (t.name, t.labels, t.sample_rate, t.min_duration_s, src["task", t.name])
            for t in cat.tasks.values()
        },
        "dataset": {
            d.name: (d.name, d.task, d.root, d.labels_from, d.label_spec, src["dataset", d.name])
            for d in cat.datasets.values()
        },
        "model": {
            m.id: (
                m.id,
                m.task,
                m.kind,
                m.ref,
                m.backbone,
                m.params,
                m.labels,
                json.dumps(cat.mappings[m.id]),
                m.accuracy,
                m.accuracy_n,
                m.license,
                src["model", m.id],
            )
            for m in cat.models.values()
        },
    }


def _existing(con: duckdb.DuckDBPyConnection, kind: str) -> dict[str, tuple]:
    table, key, cols = _TABLES[kind]
    query = f"SELECT {', '.join(cols)} FROM {table}"
    return {row[0]: tuple(row) for row in con.execute(query).fetchall()}


def _refuse_breaking_changes(
    con: duckdb.DuckDBPyConnection, cat: Catalog, old: dict[str, dict[str, tuple]]
) -> None:
    """Refuse changes that registered clips depend on: task labels or rate, a dataset's task."""
    for name, task in cat.tasks.items():
        before = old["task"].get(name)
        if before and (list(before[1]) != task.labels or before[2] != task.sample_rate):
            n = con.execute(
                "SELECT count(*) FROM clips JOIN datasets USING (dataset) WHERE datasets.task = ?",
                [name],
            ).fetchall()[0][0]
            if n:
                raise CatalogError(
                    f"{cat.directory / cat.sources['task', name]}: key '{name}.labels' or "
                    f"'{name}.sample_rate' changed, but {n} clips are registered under the old "
                    "ones and stored results follow their order; name a new task instead, or "
                    "use a new warehouse"
                )
    for name, ds in cat.datasets.items():
        before = old["dataset"].get(name)
        if before and before[1] != ds.task:
            n = con.execute("SELECT count(*) FROM clips WHERE dataset = ?", [name]).fetchall()[0][0]
            if n:
                raise CatalogError(
                    f"{cat.directory / cat.sources['dataset', name]}: key 'task' changed from "
                    f"{before[1]!r} to {ds.task!r}, but {n} clips of {name!r} are registered; "
                    "give the dataset a new name instead"
                )


def sync(con: duckdb.DuckDBPyConnection, catalog_dir: str | Path) -> SyncSummary:
    """Load the catalog in `catalog_dir` and upsert tasks, datasets and models.

    Everything is validated first and written in one transaction: on any error nothing is
    written. Entries the catalog no longer lists are kept (rows may refer to them) and
    reported as stale. Refuses (CatalogError) what `load` refuses, and changes to a task's
    labels or sample rate, or to a dataset's task, once clips depend on them.
    Returns a SyncSummary.
    """
    cat = load(catalog_dir)
    new = _rows(cat)
    old = {kind: _existing(con, kind) for kind in _TABLES}
    _refuse_breaking_changes(con, cat, old)
    summary = SyncSummary()
    with transaction(con):
        for kind, (table, _key, cols) in _TABLES.items():
            marks = ", ".join("?" for _ in cols)
            for name, row in new[kind].items():
                before = old[kind].get(name)
                if before is None:
                    summary.added.setdefault(kind, []).append(name)
                elif _same(before, row):
                    summary.unchanged.setdefault(kind, []).append(name)
                    continue
                else:
                    summary.changed.setdefault(kind, []).append(name)
                con.execute(
                    f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})", row
                )
            summary.stale[kind] = sorted(set(old[kind]) - set(new[kind]))
    return summary


def _same(a: tuple, b: tuple) -> bool:
    return all((list(x) if isinstance(x, list) else x) == y for x, y in zip(a, b, strict=True))


def listing(con: duckdb.DuckDBPyConnection) -> dict[str, duckdb.DuckDBPyRelation]:
    """What the warehouse knows: relations for tasks, datasets (with clip counts) and models."""
    return {
        "tasks": con.sql(
            "SELECT task, labels, sample_rate, min_duration_s FROM tasks ORDER BY task"
        ),
        "datasets": con.sql(
            "SELECT d.dataset, d.task, count(c.clip_id) AS clips, "
            "count(c.audio) AS with_audio, d.labels_from, d.root "
            "FROM datasets d LEFT JOIN clips c USING (dataset) "
            "GROUP BY ALL ORDER BY d.dataset"
        ),
        "models": con.sql(
            "SELECT model, task, kind, backbone, n_params, reported_accuracy, license, ref "
            "FROM models ORDER BY task, model"
        ),
    }
