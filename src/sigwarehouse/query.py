"""The query layer behind `sigwh sql` and `sigwh info`: read-only by default."""

from __future__ import annotations

from pathlib import Path

import duckdb

from sigwarehouse import warehouse
from sigwarehouse.errors import SigwhError


def run(
    path: Path,
    query: str,
    fmt: str = "table",
    *,
    out: Path | None = None,
    read_only: bool = True,
    max_rows: int = 40,
) -> str:
    """Run `query` and return it rendered as fmt (table, csv, json), or write it to `out`.

    parquet needs `out`. Returns the text to print ("" when written to a file). SQL errors
    are raised as SigwhError with DuckDB's message.
    """
    if fmt == "parquet" and out is None:
        raise SigwhError("--format parquet needs --out FILE")
    con = warehouse.connect(path, read_only=read_only)
    try:
        try:
            rel = con.sql(query)
        except duckdb.Error as exc:
            raise SigwhError(f"SQL error: {exc}") from exc
        if rel is None:  # a statement with no result, e.g. with --write
            return "ok"
        if out is not None:
            frame = rel.pl()
            {"csv": frame.write_csv, "json": frame.write_json, "parquet": frame.write_parquet}.get(
                fmt, frame.write_csv
            )(out)
            return f"wrote {len(frame)} rows to {out}"
        if fmt == "table":
            return rel.__str__() if max_rows <= 0 else _table(rel, max_rows)
        frame = rel.pl()
        return frame.write_csv() if fmt == "csv" else frame.write_json()
    finally:
        con.close()


def _table(rel: duckdb.DuckDBPyRelation, max_rows: int) -> str:
    import polars as pl

    frame = rel.pl()
    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=-1,
        fmt_str_lengths=60,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
    ):
        shown = str(frame)
    return (
        shown
        if len(frame) <= max_rows
        else f"{shown}\n({len(frame)} rows; --max-rows or --out for all)"
    )


def summary(path: Path) -> str:
    """A few lines a person reads first: schema, tasks, datasets, models, rows per table."""
    con = warehouse.connect(path, read_only=True)
    try:
        applied = warehouse.applied_versions(con)
        lines = [
            f"warehouse {path} ({path.stat().st_size / 1e6:.1f} MB), schema "
            f"{max(applied, default=0)} of {warehouse.code_schema_version()}"
        ]
        if warehouse.pending(con):
            lines.append("  migrations pending: run `sigwh migrate`")
        names = {n for (n, _) in warehouse.table_counts(con)}
        if "tasks" in names:
            for task, labels in con.execute(
                "SELECT task, labels FROM tasks ORDER BY task"
            ).fetchall():
                lines.append(f"task {task}: {', '.join(labels)}")
        if "datasets" in names:
            rows = con.execute(
                "SELECT d.dataset, d.task, count(c.clip_id) FROM datasets d "
                "LEFT JOIN clips c USING (dataset) GROUP BY ALL ORDER BY 1"
            ).fetchall()
            for dataset, task, n in rows:
                lines.append(f"dataset {dataset} ({task}): {n} clips")
        if "models" in names:
            rows = con.execute(
                "SELECT task, string_agg(model, ', ' ORDER BY model) FROM models "
                "GROUP BY task ORDER BY task"
            ).fetchall()
            for task, models in rows:
                lines.append(f"models of {task}: {models}")
        lines.append("rows per table:")
        lines += [f"  {name:<24} {n:>10}" for name, n in warehouse.table_counts(con)]
        return "\n".join(lines)
    finally:
        con.close()


def export_parquet(path: Path, out_dir: Path) -> str:
    """Write every table of the warehouse to out_dir as Parquet (DuckDB's EXPORT DATABASE).

    The folder also gets schema.sql and load.sql, so `IMPORT DATABASE` rebuilds the file.
    Refuses a non-empty folder rather than mixing two exports.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SigwhError(f"{out_dir} is not empty; choose a new folder for the export")
    con = warehouse.connect(path, read_only=True)
    try:
        escaped = str(out_dir).replace("'", "''")
        con.execute(f"EXPORT DATABASE '{escaped}' (FORMAT parquet)")
    finally:
        con.close()
    n = len(list(out_dir.glob("*.parquet")))
    return f"wrote {n} tables to {out_dir}"
