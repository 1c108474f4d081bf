"""Warehouse look-ups the jobs share: a model's catalog record, a task's labels and
datasets, the parameter set of a model's explanations and the warehouse's current set.

Each refuses what is not there with a SigwhError that says what to run, so every job
(and every command over it) words the same mistake the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigwarehouse.errors import SigwhError
from sigwarehouse.freqrex.params import ALGORITHM_VERSION, PRESETS, FreqrexParams

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class ModelRecord:
    model: str
    task: str
    kind: str
    ref: str
    labels: list[str]
    label_map: dict[str, str] | None


def model_record(con: duckdb.DuckDBPyConnection, model: str) -> ModelRecord:
    row = con.execute(
        "SELECT model, task, kind, ref, labels, label_map FROM models WHERE model = ?", [model]
    ).fetchone()
    if row is None:
        known = [m for (m,) in con.execute("SELECT model FROM models ORDER BY 1").fetchall()]
        raise SigwhError(
            f"unknown model {model!r}; known: {', '.join(known) or 'none'} "
            "(add it to ingest/models/*.toml and run `sigwh catalog sync`)"
        )
    label_map = json.loads(row[5]) if row[5] else None
    return ModelRecord(row[0], row[1], row[2], row[3], list(row[4]), label_map)


def task_models(con: duckdb.DuckDBPyConnection, task: str) -> list[ModelRecord]:
    names = con.execute("SELECT model FROM models WHERE task = ? ORDER BY model", [task]).fetchall()
    return [model_record(con, m) for (m,) in names]


def task_labels(con: duckdb.DuckDBPyConnection, task: str) -> tuple[list[str], int]:
    """The task's labels (in order) and sample rate."""
    labels, rate = con.execute(
        "SELECT labels, sample_rate FROM tasks WHERE task = ?", [task]
    ).fetchall()[0]
    return list(labels), int(rate)


def task_datasets(con: duckdb.DuckDBPyConnection, task: str, dataset: str | None) -> list[str]:
    """The task's datasets, or just `dataset` (refused when it is not one of them)."""
    names = [
        d
        for (d,) in con.execute(
            "SELECT dataset FROM datasets WHERE task = ? ORDER BY 1", [task]
        ).fetchall()
    ]
    if dataset is None:
        return names
    if dataset not in names:
        raise SigwhError(
            f"dataset {dataset!r} is not a dataset of task {task!r} "
            f"(its datasets: {', '.join(names) or 'none'})"
        )
    return [dataset]


def class_index(labels: list[str], label: str) -> int:
    """The index of `label` among the task's labels; refuses an unknown label."""
    if label not in labels:
        raise SigwhError(f"{label!r} is not a label of the task (its labels: {', '.join(labels)})")
    return labels.index(label)


def explained_params(
    con: duckdb.DuckDBPyConnection, model: str, params_hash: str | None = None
) -> tuple[str, FreqrexParams]:
    """The parameter set of `model`'s explanations: `params_hash`, or the only one stored.

    Refuses a model without explanations, an unknown hash, and several parameter sets
    when none is named (it lists them).
    """
    rows = con.execute(
        "SELECT e.params_hash, any_value(p.params), count(*) FROM explanations e"
        " LEFT JOIN freqrex_params p USING (params_hash) WHERE e.model = ?"
        " GROUP BY 1 ORDER BY 1",
        [model],
    ).fetchall()
    if not rows:
        raise SigwhError(
            f"model {model} has no explanations yet: run `sigwh ingest --model {model}`"
        )
    if params_hash is None and len(rows) > 1:
        listed = ", ".join(f"{h} ({n} clips)" for h, _, n in rows)
        raise SigwhError(
            f"model {model} has explanations with several parameter sets ({listed}); "
            "choose one with --params-hash"
        )
    chosen = (
        rows[0] if params_hash is None else next((r for r in rows if r[0] == params_hash), None)
    )
    if chosen is None:
        raise SigwhError(
            f"model {model} has no explanations with parameters {params_hash!r} "
            f"(it has {', '.join(h for h, _, _ in rows)})"
        )
    if chosen[1] is None:
        raise SigwhError(f"parameter set {chosen[0]} is not in freqrex_params")
    return chosen[0], FreqrexParams.from_dict(json.loads(chosen[1]))


@dataclass(frozen=True)
class CurrentParams:
    """The warehouse's current parameter set (table current_params) as stored."""

    params_hash: str
    values: dict  # the stored parameters (freqrex_params.params), runtime fields included

    def params(self) -> FreqrexParams:
        """The set as FreqrexParams, to continue it. Refuses a set this code cannot make
        again (an earlier search version, or parameters it no longer knows)."""
        version = self.values.get("algorithm")
        if version != ALGORITHM_VERSION:
            raise SigwhError(
                f"the warehouse's current parameter set {self.params_hash} was made by "
                f"search version {version}; this sigwarehouse runs version "
                f"{ALGORITHM_VERSION}: choose a set with --preset (its results stay apart)"
            )
        try:
            params = FreqrexParams.from_dict(self.values)
        except (TypeError, ValueError) as exc:
            raise SigwhError(
                f"the warehouse's current parameter set {self.params_hash} cannot be "
                f"continued ({exc}): choose a set with --preset (its results stay apart)"
            ) from exc
        if params.hash() != self.params_hash:
            raise SigwhError(
                f"the warehouse's current parameter set {self.params_hash} hashes to "
                f"{params.hash()} in this sigwarehouse: choose a set with --preset"
            )
        return params

    def preset(self) -> str | None:
        """The name of the preset this set is, if it is one."""
        return next((n for n, p in PRESETS.items() if p.hash() == self.params_hash), None)


def current_params(con: duckdb.DuckDBPyConnection) -> CurrentParams | None:
    """The warehouse's current parameter set, or None while no ingest job has set one."""
    row = con.execute(
        "SELECT c.params_hash, p.params FROM current_params c"
        " LEFT JOIN freqrex_params p USING (params_hash)"
    ).fetchone()
    if row is None:
        return None
    if row[1] is None:
        raise SigwhError(f"the current parameter set {row[0]} is not in freqrex_params")
    return CurrentParams(row[0], json.loads(row[1]))
