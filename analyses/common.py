"""What every analysis shares: small query helpers (the Section it returns and its
tables, charts and audio are the report's types, `sigwarehouse.report.sections`).

An analysis is a module with `run(con) -> Section`. It reads the warehouse through
DuckDB (views first, raw tables only where a view does not say it), computes with
Polars/NumPy/SciPy, and returns tables (Polars DataFrames) and Altair charts. It never
raises for missing data: it returns a Section whose `missing` says what is absent and
what to run to get it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

KINDS = ("sufficient", "complete")
NO_CROSS_MODEL = "No model has signals evaluated on another model yet."
GROUP_KEYS = ["task", "dataset", "params_hash"]
# Rows a chart of one point per clip or signal embeds: a chart of a study's 50,000 clips
# took 26 s to draw and made the page tens of MB. Beyond it a chart shows a seeded sample
# (every row stays in the table's CSV). Altair refuses more than 5000 rows by default.
CHART_ROWS = 5000
# The first step of the clip-level analyses of transfer: each sufficient and complete
# signal of the parameter set a task shows, with each other model of its task, and
# whether that model accepts it (1: its top-1 is the source's class, else 0). Only small
# tables are joined to the rows (the shown sets of the source models, as a semi-join):
# the analyses aggregate the signals first and name their task and dataset after, so
# DuckDB's hash tables hold numbers and a few short keys, not every row's names.
ACCEPTED_SIGNALS = """shown AS (
    SELECT m.model, m.task, p.params_hash
    FROM models AS m JOIN parameter_sets AS p ON p.task = m.task AND p.shown
),
signals AS (
    SELECT s.params_hash, s.kind, s.clip_id, s.source_model, s.target_model,
           (s.top1 = s.source_class)::INTEGER AS accepted
    FROM signal_probs AS s
    SEMI JOIN shown AS w ON w.model = s.source_model AND w.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete') AND s.source_model <> s.target_model
)"""


def chart_sample(frame: pl.DataFrame, what: str) -> tuple[pl.DataFrame, str]:
    """The frame's rows for a chart, at most CHART_ROWS of them (a seeded random sample
    when there are more, in the frame's order), and what the caption says about them
    ('' when every row is drawn). `what` names the rows, e.g. 'clips'."""
    if frame.height <= CHART_ROWS:
        return frame, ""
    sample = frame.with_row_index("_row").sample(CHART_ROWS, seed=0).sort("_row").drop("_row")
    return sample, (
        f" The chart draws a random sample of {CHART_ROWS} of the {frame.height} {what}; "
        "the CSV has every one."
    )


# Clips whose signals one query of a clip-level analysis counts at a time: DuckDB's hash
# tables then hold at most about this many clips' model pairs (20,000 clips of 8 models:
# 1.1 million), within the report's memory at any number of clips. Ingestion writes
# signals in batches of clips, so a range of clip ids reads few of the file's row groups.
CLIPS_PER_QUERY = 20_000


def clip_ranges(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> list[list[int]]:
    """[first, last] clip ids (inclusive) of consecutive ranges that cover every clip (of
    `dataset`, when given), each of about CLIPS_PER_QUERY clips."""
    ids = con.execute(
        "SELECT clip_id FROM clips WHERE dataset = coalesce(?, dataset) ORDER BY clip_id",
        [dataset],
    ).fetchnumpy()["clip_id"]
    parts = np.array_split(ids, -(-len(ids) // CLIPS_PER_QUERY))
    return [[int(part[0]), int(part[-1])] for part in parts if len(part)]


def unpack_mask(blob: bytes, n_vars: int) -> np.ndarray:
    """A stored mask as a bool array (freqrex.spectral's unpack_mask)."""
    # torch (freqrex.spectral imports it, 2-3 s and 180 MB): only when a mask is unpacked
    from sigwarehouse.freqrex.spectral import unpack_mask as unpack

    return unpack(blob, n_vars)


def has_relations(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    """True when every named table, view or table macro exists in the warehouse."""
    # Tables and views first: listing duckdb_functions() (thousands of built-ins) takes
    # ten times as long, and most names asked for are tables or views.
    tables = {
        n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    rest = [n for n in names if n not in tables]
    if not rest:
        return True
    macros = con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro'"
    ).fetchall()
    return set(rest) <= {n for (n,) in macros}


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None
) -> pl.DataFrame:
    """The result of `sql` as a Polars DataFrame.

    DuckDB 2 refuses this on a connection whose last execute() result was not read to the
    end (e.g. after a fetchone()): analyses read every execute() with fetchall().
    """
    return con.sql(sql, params=params or None).pl()


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows in `table` (0 when it does not exist)."""
    if not has_relations(con, table):
        return 0
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]


def no_signals_message(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why transferability cannot be computed yet, or None when signal probabilities exist."""
    if not has_relations(con, "signal_probs", "alpha_transferability"):
        return "This warehouse has no transferability views; run `sigwh migrate`."
    if count(con, "signal_probs") == 0:
        return (
            "No signal probabilities are stored yet: run `sigwh ingest --model M` for at "
            "least two models of a task."
        )
    return None


def model_meta(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """model, task, backbone, size_M (millions of parameters) and reported accuracy."""
    return query(
        con,
        "SELECT model, task, backbone, n_params / 1e6 AS size_M, reported_accuracy "
        "FROM models ORDER BY model",
    )


def group_label(task: str, dataset: str, params_hash: str, several_hashes: bool) -> str:
    """How a (task, dataset, parameter set) group is named in titles."""
    label = f"{task} / {dataset}"
    return f"{label} (parameters {params_hash})" if several_hashes else label


def slug(*parts: str) -> str:
    """A file-safe name made of the parts."""
    text = "-".join(parts)
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def groups(frame: pl.DataFrame) -> list[tuple[str, str, str, str, pl.DataFrame]]:
    """(task, dataset, params_hash, label, rows) for each group of a frame with GROUP_KEYS.

    Groups are sorted; the label mentions the parameter set only when a (task, dataset)
    has several.
    """
    if frame.is_empty():
        return []
    per_pair = frame.group_by(["task", "dataset"]).agg(pl.col("params_hash").n_unique())
    several = set(per_pair.filter(pl.col("params_hash") > 1).select("task", "dataset").iter_rows())
    out = []
    for (task, dataset, params_hash), rows in sorted(
        frame.group_by(GROUP_KEYS, maintain_order=True), key=lambda g: g[0]
    ):
        label = group_label(task, dataset, params_hash, (task, dataset) in several)
        out.append((task, dataset, params_hash, label, rows))
    return out
