"""signal_probs at study scale: no primary-key index, its key kept by the writer.

Migration 0007 rebuilds signal_probs without the index (which took most of each row's
bytes, bench/bench_views.py) in one transaction. Properties: a warehouse made before it
migrates in place with every row and every view result unchanged; an interrupted
migration leaves the old table whole; `sigwh info` warns when a foreign writer has
stored a key twice (the views would count it twice).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from reference import stored_transfer_counts, tally_transfer_counts
from sharing import copy_of, sigwh

from sigwarehouse import store
from sigwarehouse.store import sql_files

OLD_TABLE = """
CREATE TABLE signal_probs_old (
    source_model VARCHAR NOT NULL, clip_id INTEGER NOT NULL, params_hash VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, target_model VARCHAR NOT NULL, source_class SMALLINT NOT NULL,
    probs FLOAT[] NOT NULL, top1 SMALLINT NOT NULL, entropy_bits FLOAT NOT NULL,
    run_id UUID NOT NULL,
    PRIMARY KEY (source_model, clip_id, params_hash, kind, target_model)
);
INSERT INTO signal_probs_old SELECT * FROM signal_probs;
DROP TABLE signal_probs;
ALTER TABLE signal_probs_old RENAME TO signal_probs;
DROP TABLE transfer_counts;
DELETE FROM schema_migrations WHERE version IN (7, 8);
"""
VIEWS = (
    "SELECT * FROM alpha_transferability",
    "SELECT * FROM beta_transferability(0.5)",
    "SELECT * FROM transferability_summary",
    "SELECT * FROM flat_earthers",
)


def _as_before_0007(path: Path) -> None:
    """Put signal_probs back as migrations 0002-0006 made it (indexed key), version 6
    (without the counts of 0008)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(OLD_TABLE)
    finally:
        con.close()


def _read(path: Path, sql: str) -> list[tuple]:
    con = store.connect(path, read_only=True)
    try:
        return con.execute(sql + " ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_an_older_warehouse_migrates_in_place_with_rows_and_views_unchanged(
    small_filled, tmp_path: Path
) -> None:
    original = small_filled[0]
    path = copy_of(original, tmp_path)
    _as_before_0007(path)
    raw = duckdb.connect(str(path), read_only=True)
    try:
        rows_before = raw.execute("SELECT * FROM signal_probs ORDER BY ALL").fetchall()
        keyed = raw.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'signal_probs'"
            " AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()[0]
    finally:
        raw.close()
    assert keyed == 1 and rows_before
    result = sigwh(path, "migrate")
    assert result.exit_code == 0, result.output
    assert "0007_signal_probs_unindexed" in result.output
    assert "0008_transfer_counts" in result.output  # counted from the migrated rows
    assert _read(path, "SELECT * FROM signal_probs") == rows_before
    raw = duckdb.connect(str(path), read_only=True)
    try:  # 0008 counted the rows as a plain tally does
        assert stored_transfer_counts(raw) == tally_transfer_counts(raw) != {}
    finally:
        raw.close()
    for sql in VIEWS:  # equal, floats up to the order DuckDB sums them in (1e-12)
        after, before = _read(path, sql), _read(original, sql)
        assert len(after) == len(before) and after, sql
        for a, b in zip(after, before, strict=True):
            for x, y in zip(a, b, strict=True):
                same = x == pytest.approx(y, rel=1e-12) if isinstance(y, float) else x == y
                assert same, (sql, a, b)
    assert "warning" not in sigwh(path, "info").output


def test_an_interrupted_migration_leaves_the_old_table_whole(
    small_filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the last statement (the copy made, the old table dropped, the new
    one renamed) rolls the whole step back."""
    path = copy_of(small_filled[0], tmp_path)
    _as_before_0007(path)
    before = _read(path, "SELECT * FROM signal_probs")
    migration = next(m for m in store.migrations() if m.version == 7)
    text = migration.path.read_text() + "\nSELECT error('interrupted');\n"
    broken = tmp_path / "0007_signal_probs_unindexed.sql"
    broken.write_text(text)
    monkeypatch.setattr(
        sql_files, "migrations",
        lambda real=store.migrations: [
            m if m.version != 7 else type(m)(m.version, m.name, broken) for m in real()
        ],
    )  # fmt: skip
    con = duckdb.connect(str(path))
    try:
        with pytest.raises(store.WarehouseError, match="failed and was rolled back"):
            store.migrate(con)
    finally:
        con.close()
    raw = duckdb.connect(str(path), read_only=True)
    try:
        assert raw.execute("SELECT * FROM signal_probs ORDER BY ALL").fetchall() == before
        keyed = raw.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'signal_probs'"
            " AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()[0]
        tables = {t for (t,) in raw.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        versions = [v for (v,) in raw.execute("SELECT version FROM schema_migrations").fetchall()]
    finally:
        raw.close()
    assert keyed == 1 and "signal_probs_compact" not in tables and 7 not in versions


def test_info_warns_when_a_key_is_stored_twice(small_filled, tmp_path: Path) -> None:
    path = copy_of(small_filled[0], tmp_path)
    con = duckdb.connect(str(path))
    try:
        con.execute("INSERT INTO signal_probs SELECT * FROM signal_probs LIMIT 2")
    finally:
        con.close()
    out = sigwh(path, "info").output
    assert "warning: 2 key(s) of signal_probs" in out and "count more than once" in out
