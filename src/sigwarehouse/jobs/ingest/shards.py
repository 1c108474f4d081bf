"""Shard files for batch schedulers (SLURM arrays and the like), and `sigwh merge`.

A shard job (`sigwh ingest --shard i/n --into shard_i.duckdb`) reads the catalog and
the clips from the main warehouse, read-only, and writes its rows into its own file:
any number of them run at once, on any machines that see the main file, with no
coordinator. `sigwh merge SHARD...` then folds each shard into the warehouse, every
shard in one transaction, through the same key-keeping inserts as the jobs
(write_path.insert_rows): a row whose natural key is stored is skipped, so merging a shard
twice, or a partial shard and later its complete version, stores each fact once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sigwarehouse import noise_floor, probes, store
from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs.ingest.plan import IngestPlan
from sigwarehouse.store import write_path

if TYPE_CHECKING:
    import duckdb

# What an ingest job writes, in the order merged (the parameter sets first, runs last).
KEYED_TABLES = (
    "freqrex_params",
    "model_probes",
    "model_noise_floors",
    "explanations",
    "sufficient_ranks",
    "original_probs",
    "signal_probs",
)
CHUNK_ROWS = 50_000  # rows per insert: bounded memory on big shards, one transaction still


def refuse_self(into: Path, main: Path) -> None:
    """A shard file must not be the warehouse the job reads."""
    if Path(into).resolve() == Path(main).resolve():
        raise SigwhError(
            f"--into {into} is the warehouse itself; give each shard job its own file, "
            "e.g. --into shards/shard_$SLURM_ARRAY_TASK_ID.duckdb"
        )


# The clips' identity that a shard carries (its `clips` rows, without the audio), so
# that a merge can tell the clips its rows name are the warehouse's own.
CLIP_COLUMNS = (
    "clip_id", "dataset", "path", "sha256", "label", "duration_s", "native_sample_rate",
    "native_channels", "native_subtype", "n_samples",
)  # fmt: skip


def open_shard(into: Path, main: Path, clip_ids: list[int]) -> Path:
    """Create the shard file (or bring an existing one, a job's earlier try, to the
    current schema), and record in it which clips of `main` its job works on."""
    refuse_self(into, main)
    path, _ = store.init(into)
    cols = ", ".join(CLIP_COLUMNS)
    with store.opened(main, read_only=True) as con:
        rows = con.execute(
            f"SELECT {cols} FROM clips WHERE clip_id IN (SELECT unnest(?::INTEGER[]))",
            [list(clip_ids)],
        ).fetchall()
    with store.opened(path, package_views=False) as con, store.transaction(con):
        write_path.insert_rows(con, [write_path.Rows("clips", CLIP_COLUMNS, rows)])
    return path


def without_stored(plan: IngestPlan, shard: Path) -> IngestPlan:
    """The plan less what the shard file already holds (a rerun of a shard job that
    was killed does only its missing work; the plan itself came from the main file)."""
    ph = plan.params.hash()
    with store.opened(shard, read_only=True) as con:
        done = {
            c
            for (c,) in con.execute(
                "SELECT clip_id FROM explanations WHERE model = ? AND params_hash = ?",
                [plan.model, ph],
            ).fetchall()
        }
        filled = set(
            con.execute(
                "SELECT DISTINCT source_model, clip_id FROM signal_probs"
                " WHERE target_model = ? AND params_hash = ?",
                [plan.model, ph],
            ).fetchall()
        )
        probed = (
            plan.probe_samples is not None
            and con.execute(
                "SELECT count(*) FROM model_probes WHERE model = ? AND n_samples = ?",
                [plan.model, plan.probe_samples],
            ).fetchall()[0][0]
            >= _probe_count()
        )
        floor = noise_floor.stored_floor(con, plan.model)  # measured by an earlier try
    if floor is not None:
        plan = replace(plan, noise_floor=floor, floor_clips=[])
    return replace(
        plan,
        clip_ids=[c for c in plan.clip_ids if c not in done],
        cross_fill=[p for p in plan.cross_fill if p not in filled],
        probe_samples=None if probed else plan.probe_samples,
    )


def _probe_count() -> int:
    return len(probes.PROBES)


@dataclass
class MergeSummary:
    shard: Path
    added: dict[str, int] = field(default_factory=dict)  # rows new to the warehouse, by table

    def describe(self) -> str:
        parts = ", ".join(f"{n:,} {table}" for table, n in self.added.items() if n)
        return f"{self.shard}: merged ({parts or 'nothing new'})"


def merge(path: Path, shards: list[Path]) -> list[MergeSummary]:
    """Fold each shard into the warehouse at `path`, each in one transaction."""
    missing = [s for s in shards if not Path(s).is_file()]
    if missing:
        raise SigwhError(f"no shard file {missing[0]}")
    if any(Path(s).resolve() == Path(path).resolve() for s in shards):
        raise SigwhError(f"{path} is the warehouse itself, not a shard")
    return [merge_shard(path, Path(s)) for s in shards]


def merge_shard(path: Path, shard: Path) -> MergeSummary:
    """Copy a shard's rows into the warehouse: keyed tables with their keys kept (a row
    whose key is stored is skipped), errors once each, and each run's latest status."""
    summary = MergeSummary(shard)
    source = store.connect(shard, read_only=True, package_views=False)
    try:
        with store.opened(path, package_views=False) as con, store.transaction(con):
            _check_clips(con, source, shard, path)
            for table in KEYED_TABLES:
                summary.added[table] = _merge_keyed(con, source, table)
            summary.added["job_errors"] = _merge_errors(con, source)
            summary.added["runs"] = _merge_runs(con, source)
            _merge_current(con, source)
    finally:
        source.close()
    return summary


def _merge_current(con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection) -> None:
    """A warehouse without a current parameter set takes the shard's (its first results)."""
    row = source.execute("SELECT params_hash FROM current_params").fetchone()
    if row is not None:
        con.execute("INSERT OR IGNORE INTO current_params (params_hash) VALUES (?)", [row[0]])


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return tuple(c for (c,) in rows)


def _select(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...]) -> str:
    """The columns as the shard query reads them: UUIDs as text (what the inserts bind;
    DuckDB casts them back), the rest as stored."""
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns()"
            " WHERE database_name = current_database() AND table_name = ?",
            [table],
        ).fetchall()
    )
    return ", ".join(
        f'"{c}"::VARCHAR AS "{c}"' if types[c] == "UUID" else f'"{c}"' for c in columns
    )


def _chunks(
    source: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], order: str = "ALL"
) -> Iterator[list[tuple]]:
    """The shard's rows of a table, CHUNK_ROWS at a time."""
    result = source.execute(
        f'SELECT {_select(source, table, columns)} FROM "{table}" ORDER BY {order}'
    )
    while rows := result.fetchmany(CHUNK_ROWS):
        yield rows


def _merge_keyed(
    con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection, table: str
) -> int:
    """Insert the shard's rows of one keyed table, in chunks, with write_path.insert_rows (its
    primary key, or signal_probs' natural key kept by an anti-join)."""
    columns = _columns(source, table)
    before = _count(con, table)
    # by clip: each chunk's anti-join (signal_probs) then scans a narrow range of clips
    order = "clip_id" if "clip_id" in columns else "ALL"
    for rows in _chunks(source, table, columns, order):
        write_path.insert_rows(con, [write_path.Rows(table, columns, rows)])
    return _count(con, table) - before


def _register(
    con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection, table: str, name: str
) -> tuple[str, ...] | None:
    """Register the shard's rows of a small table (runs, job_errors) on `con` as `name`;
    their columns, or None when there is none."""
    columns = _columns(source, table)
    rows = [r for chunk in _chunks(source, table, columns) for r in chunk]
    if not rows:
        return None
    con.register(name, write_path.arrow_table(write_path.Rows(table, columns, rows)))
    return columns


def _merge_errors(con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection) -> int:
    """job_errors has no key: a shard's error is added unless the same error of the same
    run (model, clip, stage, message) is stored already."""
    columns = _register(con, source, "job_errors", "_sigwh_shard_errors")
    if columns is None:
        return 0
    before = _count(con, "job_errors")
    cols = ", ".join(f'"{c}"' for c in columns)
    same = " AND ".join(
        f"s.{c} IS NOT DISTINCT FROM n.{c}"
        for c in ("run_id", "model", "clip_id", "stage", "error")
    )
    con.execute(
        f"INSERT INTO job_errors ({cols}) SELECT DISTINCT {cols}"
        f" FROM _sigwh_shard_errors n WHERE NOT EXISTS (SELECT 1 FROM job_errors s WHERE {same})"
    )
    con.unregister("_sigwh_shard_errors")
    return _count(con, "job_errors") - before


def _merge_runs(con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection) -> int:
    """Each run's latest state: the shard's row replaces the stored one, unless the
    stored one has ended and the shard's still says `running` (an older copy of the
    shard merged after a newer one). Returns the runs new to the warehouse."""
    columns = _register(con, source, "runs", "_sigwh_shard_runs")
    if columns is None:
        return 0
    before = _count(con, "runs")
    cols = ", ".join(f'"{c}"' for c in columns)
    con.execute(
        f"INSERT OR REPLACE INTO runs ({cols}) SELECT {cols} FROM _sigwh_shard_runs n"
        " WHERE NOT EXISTS (SELECT 1 FROM runs s WHERE s.run_id = n.run_id::UUID"
        " AND s.status <> 'running' AND n.status = 'running')"
    )
    con.unregister("_sigwh_shard_runs")
    return _count(con, "runs") - before


def _check_clips(
    con: duckdb.DuckDBPyConnection, source: duckdb.DuckDBPyConnection, shard: Path, path: Path
) -> None:
    """Refuse a shard made from another warehouse: clip ids are numbered per warehouse,
    so its rows would land on other clips. Every clip its rows name must be one the
    shard recorded (open_shard) and the same file here (dataset, path and sha256)."""
    named = source.execute(
        "SELECT DISTINCT clip_id FROM explanations UNION SELECT DISTINCT clip_id"
        " FROM signal_probs UNION SELECT DISTINCT clip_id FROM original_probs"
    ).fetchall()
    if not named:
        return
    ids = [c for (c,) in named]
    query = (
        "SELECT clip_id, dataset, path, sha256 FROM clips"
        " WHERE clip_id IN (SELECT unnest(?::INTEGER[])) ORDER BY clip_id"
    )
    theirs = source.execute(query, [ids]).fetchall()
    ours = con.execute(query, [ids]).fetchall()
    if len(theirs) != len(ids):
        raise SigwhError(
            f"{shard} does not record the clips its rows name: it was not written by "
            "`sigwh ingest --into`; nothing merged"
        )
    if theirs != ours:
        differ = len(set(theirs) - set(ours))
        raise SigwhError(
            f"{shard} was made from another warehouse: {differ} of its {len(ids)} clip id(s) "
            f"name other clips (or none) in {path}; merge it into the file its jobs read"
        )
