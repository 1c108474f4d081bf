"""The query layer behind `sigwh sql` and `sigwh info`: read-only by default."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sigwarehouse import records, store
from sigwarehouse.errors import SigwhError
from sigwarehouse.freqrex.params import PRESETS, RUNTIME_FIELDS
from sigwarehouse.store import file_format, integrity, sql_files, transfer_counts, views
from sigwarehouse.store.write_path import UNINDEXED_KEYS

EXAMPLE = 'sigwh sql "SELECT * FROM model_accuracy"'
# Statements that change or remove what is stored: `sigwh sql --write` asks before these.
_DESTRUCTIVE = {"DROP", "DELETE", "ALTER", "UPDATE"}
_TARGET = re.compile(
    r"^\s*(?:DROP\s+(?:TABLE|VIEW|MACRO\s+TABLE|MACRO|FUNCTION|SEQUENCE|INDEX|TYPE)"
    r"(?:\s+IF\s+EXISTS)?|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|ALTER\s+(?:TABLE|VIEW|SEQUENCE)"
    r"(?:\s+IF\s+EXISTS)?|UPDATE|CREATE\s+OR\s+REPLACE\s+(?:TABLE|VIEW))\s+([\w.\"]+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """One statement of a query: its text, DuckDB's statement type, and whether it
    returns rows to show (a SELECT, PRAGMA, DESCRIBE, ...)."""

    text: str
    kind: str  # DuckDB's StatementType name: SELECT, DELETE, DROP, ...
    returns_rows: bool

    @property
    def short(self) -> str:
        flat = " ".join(self.text.split()).rstrip(";")
        return flat if len(flat) <= 70 else flat[:67] + "..."


def split(query: str) -> list[Statement]:
    """The statements of `query`, in order. Refuses an empty query and one DuckDB cannot
    parse (SigwhError, with DuckDB's message)."""
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        parsed = con.extract_statements(query)
    except duckdb.Error as exc:
        raise SigwhError(f"SQL error: {exc}") from exc
    finally:
        con.close()
    if not parsed:
        raise SigwhError(f"the query is empty; give one or more statements, e.g. {EXAMPLE}")
    out = []
    for st in parsed:
        kind = st.type.name
        expected = {t.name for t in st.expected_result_type}
        out.append(Statement(st.query.strip(), kind, expected == {"QUERY_RESULT"}))
    return out


def destructive(con: duckdb.DuckDBPyConnection, statements: list[Statement]) -> list[str]:
    """A phrase for each statement that would drop, delete, truncate, alter, update or
    replace one of the warehouse's own tables, views or macros, e.g.
    "DROP TABLE clips (1,234 rows)". A statement whose target is not in the file (a TEMP
    table made by the same query) is not listed; one whose target is unclear is."""
    tables = dict(store.table_counts(con))
    objects = set(integrity.relation_types(con)) | set(integrity.definitions(con))
    found = []
    for st in statements:
        replaces = st.kind == "CREATE" and re.match(r"\s*CREATE\s+OR\s+REPLACE\s", st.text, re.I)
        if st.kind not in _DESTRUCTIVE and not replaces:
            continue
        match = _TARGET.match(st.text)
        name = match[1].replace('"', "").split(".")[-1] if match else None
        qualifier = match[1].replace('"', "").split(".")[0].lower() if match else ""
        if name is not None and (name not in objects or qualifier == "temp"):
            continue
        what = st.short
        if name in tables:
            n = tables[name]
            what += f" ({n:,} row{'' if n == 1 else 's'} in {name})"
        found.append(what)
    return found


def run(
    path: Path,
    query: str,
    fmt: str = "table",
    *,
    out: Path | None = None,
    read_only: bool = True,
    max_rows: int = 40,
    allow_files: bool = False,
    confirm: Callable[[list[str]], bool] | None = None,
    warn: Callable[[str], None] | None = None,
) -> str:
    """Run the statements of `query` in order and return every result rendered as fmt
    (table, csv, json), or write the one result to `out`.

    The warehouse opens read-only unless read_only is False, and through this package's
    views (a file whose stored views differ gets a `warn`ing). Its SQL cannot read files
    or the network unless allow_files. Before a statement that drops, deletes, alters or
    updates the warehouse's data, `confirm(phrases)` is asked (None: no question) and a
    False answer changes nothing. Refuses (SigwhError) an empty query, csv/json/--out
    with several results, parquet without `out`, a write in read-only mode (saying to
    add --write), and SQL errors (with DuckDB's message).
    """
    statements = split(query)
    with_rows = [st for st in statements if st.returns_rows]
    if fmt == "parquet" and out is None:
        raise SigwhError("--format parquet needs --out FILE")
    if len(with_rows) > 1 and (out is not None or fmt != "table"):
        where = f"--out {out}" if out is not None else f"--format {fmt}"
        raise SigwhError(
            f"{where} takes one result, and this query has {len(with_rows)} statements that "
            "return rows; run them one at a time, or show them all with --format table"
        )
    con = _open(path, read_only, allow_files, warn or (lambda _: None))
    try:
        if not read_only and confirm is not None:
            risky = destructive(con, statements)
            if risky and not confirm(risky):
                raise SigwhError("not confirmed: nothing was run, the warehouse is unchanged")
        n = len(statements)
        shown = [_execute(con, st, i, n, read_only) for i, st in enumerate(statements)]
        if not read_only and any(not st.returns_rows for st in statements):
            _recount_after_write(con, warn or (lambda _: None))
        if out is not None:
            frame = shown[statements.index(with_rows[0])][1] if with_rows else None
            if frame is None:
                raise SigwhError("the query returns no rows to write to --out")
            writer = {"csv": frame.write_csv, "json": frame.write_json}
            writer.get(fmt, frame.write_parquet if fmt == "parquet" else frame.write_csv)(out)
            return f"wrote {len(frame)} rows to {out}"
        if fmt != "table":
            frames = [frame for _, frame in shown if frame is not None]
            if not frames:
                return "\n".join(text for text, _ in shown)
            text = frames[0].write_csv() if fmt == "csv" else frames[0].write_json()
            return text.rstrip("\n")
        if len(statements) == 1:
            text, frame = shown[0]
            return text if frame is None else _table(frame, max_rows)
        blocks = []
        for i, (st, (text, frame)) in enumerate(zip(statements, shown, strict=True), 1):
            body = text if frame is None else _table(frame, max_rows)
            blocks.append(f"-- [{i}/{len(statements)}] {st.short}\n{body}")
        return "\n\n".join(blocks)
    finally:
        con.close()


def _open(
    path: Path, read_only: bool, allow_files: bool, warn: Callable[[str], None]
) -> duckdb.DuckDBPyConnection:
    """The connection `sigwh sql` runs on; warns about views the file defines otherwise.

    With --write, a damaged file still opens (with a warning, and without the package's
    views, which need the missing tables), so that a user can repair it by hand.
    """
    try:
        con = store.connect(path, read_only=read_only, external_access=allow_files)
    except integrity.DamagedError as exc:
        if read_only:
            raise
        warn(f"{exc}\nOpened anyway for --write, with the file's own views, to repair it.")
        return store.connect(
            path, read_only=False, external_access=allow_files, allow_damaged=True,
            package_views=False,
        )  # fmt: skip
    try:
        applied = store.applied_versions(con)
        differ = [d.name for d in views.differences(con, applied) if d.status != "extra"]
    except Exception:
        con.close()
        raise
    if differ:
        warn(
            f"warning: {len(differ)} view(s) stored in {path} differ from this "
            f"sigwarehouse's ({', '.join(differ)}); this query reads sigwarehouse's. "
            "`sigwh views --check` shows the differences; `sigwh migrate` replaces the file's."
        )
    return con


def _recount_after_write(con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]) -> None:
    """The α and β views read transfer_counts, which sigwarehouse's writer keeps; after
    a write by hand it is counted afresh from the rows (seconds at 10^8 rows)."""
    names = {n for (n, _) in store.table_counts(con)}
    if not {"transfer_counts", "signal_probs"} <= names:
        return
    try:
        with store.transaction(con):
            transfer_counts.rebuild(con)
    except duckdb.Error as exc:
        warn(
            f"warning: transfer_counts could not be counted afresh after the write "
            f"({str(exc).splitlines()[0]}); the α and β views may be out of date until "
            "`sigwh recount` succeeds"
        )


def _execute(
    con: duckdb.DuckDBPyConnection, st: Statement, index: int, total: int, read_only: bool
):
    """Run one statement; returns (message, frame): the frame of a statement that returns
    rows (read before the next statement runs), else a line saying what happened."""
    where = f"statement {index + 1} of {total} ({st.kind})" if total > 1 else st.kind
    try:
        rel = con.sql(st.text)
        frame = rel.pl() if rel is not None else None
    except duckdb.Error as exc:
        message = str(exc)
        if read_only and "read-only" in message:
            raise SigwhError(
                f"{where} would change the warehouse, which `sigwh sql` opens read-only; "
                "add --write to change it (nothing was changed)"
            ) from exc
        if "disabled by configuration" in message or "external access" in message.lower():
            raise SigwhError(
                f"{where} reads a file or the network, which the warehouse's SQL may not: "
                f"{message.splitlines()[0]}. For your own query on your own file add "
                "--allow-files (a view stored in a shared file is its author's SQL: check "
                "it with `sigwh views --check` first)"
            ) from exc
        raise SigwhError(f"SQL error in {where}: {exc}") from exc
    if st.returns_rows:
        return "", frame
    if frame is not None and frame.columns == ["Count"] and len(frame) == 1:
        return f"{st.kind}: {frame.item():,} row(s)", None
    return f"{st.kind}: ok", None


def _table(frame, max_rows: int) -> str:
    import polars as pl  # polars: only for --format and the table printed

    with pl.Config(
        tbl_rows=max_rows if max_rows > 0 else -1,
        tbl_cols=-1,
        fmt_str_lengths=60,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
    ):
        shown = str(frame)
    return (
        shown
        if max_rows <= 0 or len(frame) <= max_rows
        else f"{shown}\n({len(frame)} rows; --max-rows or --out for all)"
    )


def duplicate_keys(con: duckdb.DuckDBPyConnection, tables: set[str]) -> list[str]:
    """A warning per table of UNINDEXED_KEYS with rows that share a natural key.

    No index keeps those keys (see store/write_path.py); sigwarehouse's writer never stores a
    key twice, but a file someone else wrote into may, and the views would count those
    rows twice."""
    out = []
    for table, key in UNINDEXED_KEYS.items():
        if table not in tables:
            continue
        cols = ", ".join(key)
        n = con.execute(
            f"SELECT count(*) FROM (SELECT {cols} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        if n:
            out.append(
                f"warning: {n} key(s) of {table} ({cols}) have several rows, which the views "
                f"count more than once; keep one row per key (e.g. CREATE TABLE ... AS "
                f"SELECT DISTINCT ON ({cols}) * FROM {table})"
            )
    return out


def stale_counts(con: duckdb.DuckDBPyConnection, tables: set[str]) -> list[str]:
    """A warning when transfer_counts, which the α and β views read, disagrees with a
    fresh count of signal_probs (rows written by something other than sigwarehouse)."""
    if not {"transfer_counts", "signal_probs"} <= tables:
        return []
    wrong = transfer_counts.disagreements(con, limit=1)
    if not wrong:
        return []
    return [
        "warning: transfer_counts disagrees with the rows of signal_probs (e.g. cell "
        f"{wrong[0][:5]}: {wrong[0][-2]} stored, {wrong[0][-1]} counted), so the α and β "
        "views are out of date; run `sigwh recount`"
    ]


def recount(path: Path) -> str:
    """Count every stored signal afresh into transfer_counts, in one transaction."""
    with store.opened(path, package_views=False) as con, store.transaction(con):
        transfer_counts.rebuild(con)
        n = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM transfer_counts").fetchone()
    return f"transfer_counts: {n[1]:,} signals in {n[0]:,} rows"


def summary(path: Path) -> str:
    """A few lines a person reads first: schema, tasks, datasets, models, rows per table."""
    header = file_format.read_header(path) if path.exists() else None  # before DuckDB holds it
    con = store.connect(path, read_only=True)
    try:
        applied = store.applied_versions(con)
        lines = [
            f"warehouse {path} ({path.stat().st_size / 1e6:.1f} MB), schema "
            f"{max(applied, default=0)} of {store.code_schema_version()}, "
            f"{header.describe() if header else 'storage: not read (file in use here)'}"
        ]
        if store.pending(con):
            lines.append("  migrations pending: run `sigwh migrate`")
        names = {n for (n, _) in store.table_counts(con)}
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
        if "current_params" in names:
            lines.append(_current_line(con))
        lines.append("rows per table:")
        lines += [f"  {name:<24} {n:>10}" for name, n in store.table_counts(con)]
        lines += duplicate_keys(con, names)
        lines += stale_counts(con, names)
        return "\n".join(lines)
    finally:
        con.close()


def _current_line(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's current parameter set: its hash, preset, how it differs from the
    default preset, and how many explanations it has."""
    current = records.current_params(con)
    if current is None:
        return "current parameter set: none yet (the first `sigwh ingest` sets it)"
    n = con.execute(
        "SELECT count(*) FROM explanations WHERE params_hash = ?", [current.params_hash]
    ).fetchone()[0]
    default = PRESETS["default"].to_dict()
    changed = [
        f"{k}={json.dumps(v)}"
        for k, v in current.values.items()
        if k not in RUNTIME_FIELDS and default.get(k) != v
    ]
    name = current.preset()
    kind = f"preset {name}" if name else "custom: " + (", ".join(changed) or "as 'default'")
    if name and name != "default":
        kind += f": {', '.join(changed)}"
    return (
        f"current parameter set: {current.params_hash} ({kind}; {n:,} explanations), "
        "continued by `sigwh ingest`"
    )


EXPORT_MEMORY = "1GB"  # DuckDB's memory limit while exporting (bench/bench_views.py --export)


def export_parquet(path: Path, out_dir: Path) -> str:
    """Write every table of the warehouse to out_dir as Parquet (DuckDB's EXPORT DATABASE).

    The folder also gets schema.sql and load.sql, so `IMPORT DATABASE` rebuilds the file:
    schema.sql holds the tables and sequences, then this package's views and macros in
    dependency order (not the file's stored ones). The warehouse's SQL may write only
    into out_dir. Refuses a non-empty folder rather than mixing two exports.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SigwhError(f"{out_dir} is not empty; choose a new folder for the export")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _export(path, out_dir)
    except BaseException:
        # A failed export (a full disk, Ctrl-C) leaves the folder as it found it, so
        # rerunning the same command is not refused as "not empty".
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            for child in out_dir.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        raise


def _export(path: Path, out_dir: Path) -> str:
    """export_parquet's work, into the empty folder out_dir."""
    con = store.connect(path, read_only=True, external_access=True)
    try:
        con.execute("SET allowed_directories = ?", [[str(out_dir.resolve()) + "/"]])
        con.execute("SET enable_external_access = false")
        # Stream each table to its file instead of gathering it in insertion order: the
        # export of 10^8 signal rows then peaks near EXPORT_MEMORY, not at 5 GB.
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET memory_limit = '{EXPORT_MEMORY}'")
        escaped = str(out_dir).replace("'", "''")
        con.execute(f"EXPORT DATABASE '{escaped}' (FORMAT parquet)")
        schema = out_dir / "schema.sql"
        kept = [
            st.text
            for st in split(schema.read_text())
            if not re.match(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:VIEW|MACRO)\b", st.text, re.I)
        ]
        ordered = [text.strip() for _, text in sql_files.ordered_views()]
        schema.write_text("\n".join(kept) + "\n\n" + "\n\n".join(ordered) + "\n")
    except duckdb.Error as exc:
        raise SigwhError(f"export of {path} failed: {exc}") from exc
    finally:
        con.close()
    tables = sorted(p.stem for p in out_dir.glob("*.parquet"))
    (out_dir / ON_PARQUET).write_text(on_parquet_sql(tables, ordered))
    return (
        f"wrote {len(tables)} tables and {len(ordered)} views to {out_dir}; to query the "
        f"Parquet files in place with the views: cd {out_dir} && duckdb -init {ON_PARQUET}"
    )


ON_PARQUET = "on_parquet.sql"


def on_parquet_sql(tables: list[str], view_texts: list[str]) -> str:
    """SQL that puts the package's views over an export's Parquet files, nothing copied:
    one view per table reading `<table>.parquet` (a path relative to the folder DuckDB
    runs in), then the views and macros in dependency order."""
    header = (
        "-- The warehouse's views over the Parquet files of this folder, read in place.\n"
        "-- Run DuckDB from this folder: duckdb -init on_parquet.sql (or .read it).\n"
    )
    readers = [
        f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM read_parquet('{t}.parquet');" for t in tables
    ]
    return header + "\n".join(readers) + "\n\n" + "\n\n".join(view_texts) + "\n"
