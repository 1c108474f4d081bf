"""Where the results came from: the jobs that ran, their parameters, and their errors."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from sigwarehouse.analyses.common import count, has_relations, query
from sigwarehouse.report.sections import Section, Table

TITLE = "Runs and parameters"
INTRO = (
    "Every job recorded in table `runs` (with its code version, device and timings), every "
    "freqrex parameter set that explanations were made with (table `freqrex_params`, one "
    "column per set), and the clips jobs could not process (table `job_errors`). Where a task "
    "has explanations with several parameter sets, the α and β tables, their intervals and "
    "the flat-earthers show one: the set with the most explanations of the task (ties: the "
    "latest run; view `parameter_sets`); `alpha_transferability_for(params_hash)` and the "
    "other `_for` macros give any set."
)


def parameter_sets(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per parameter (plus `explanations`, the count made with the set, and `shown
    for tasks`, the tasks whose views show it), one column per params_hash; values as text,
    since parameters mix numbers and names."""
    rows = con.execute(
        "SELECT p.params_hash, p.params, count(e.clip_id) FROM freqrex_params AS p "
        "LEFT JOIN explanations AS e USING (params_hash) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    shown = {}
    if has_relations(con, "parameter_sets"):
        shown = dict(
            con.execute(
                "SELECT params_hash, string_agg(task, ', ' ORDER BY task) FROM parameter_sets"
                " WHERE shown GROUP BY 1"
            ).fetchall()
        )
    sets = {
        h: {"explanations": n, "shown for tasks": shown.get(h, "-"), **json.loads(params)}
        for h, params, n in rows
    }
    names = list(dict.fromkeys(k for values in sets.values() for k in values))
    columns = {h: [_text(values.get(k)) for k in names] for h, values in sets.items()}
    return pl.DataFrame({"parameter": names, **columns}) if sets else pl.DataFrame()


def _text(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """Tables of runs, parameter sets and errors; `missing` when no job has run."""
    section = Section("provenance", TITLE, INTRO)
    if not has_relations(con, "runs", "freqrex_params", "job_errors") or count(con, "runs") == 0:
        section.missing = "No job has run on this warehouse yet: run `sigwh ingest`."
        return section
    runs = query(
        con,
        """
        SELECT run_id::VARCHAR AS run_id, job, model, task, dataset, params_hash, seed,
               code_version, device, host, started_at, ended_at, status, clips_done, queries,
               round(model_seconds, 1) AS model_s, round(total_seconds, 1) AS total_s,
               n_errors, message
        FROM runs ORDER BY started_at
        """,
    )
    # The page shows what fits its width: a run by the first 8 digits of its id, without
    # host, dataset, seed or end time (started_at + total_s), and the runs' messages in a
    # table of their own; the CSV of `runs` has every column.
    short = runs.with_columns(pl.col("run_id").str.slice(0, 8).alias("run"))
    left_out = ("run_id", "host", "dataset", "seed", "ended_at", "message")
    section.tables.append(
        Table(
            "runs_in_page",
            "Jobs, oldest first (every column, with the whole run id, in the CSV of `runs`).",
            short.select("run", *[c for c in runs.columns if c not in left_out]),
        )
    )
    messages = short.filter(pl.col("message").is_not_null()).select("run", "status", "message")
    if not messages.is_empty():
        section.tables.append(
            Table("runs_messages", "What the jobs that left a message said.", messages)
        )
    section.tables.append(Table("runs", "Every job, every column.", runs, in_page=False))
    params = parameter_sets(con)
    if not params.is_empty():
        section.tables.append(Table("freqrex_params", "freqrex parameter sets.", params))
    errors = query(
        con,
        "SELECT run_id::VARCHAR AS run_id, model, stage, count(*) AS n, min(error) AS example "
        "FROM job_errors GROUP BY ALL ORDER BY run_id, model, stage",
    )
    if errors.is_empty():
        section.notes.append("No job recorded an error.")
    else:
        section.tables.append(Table("job_errors", "Errors per run, model and stage.", errors))
    return section
