"""Sharing the file with other DuckDB readers (issue 12, points 1 and 2): the storage
version warehouses are written in, reading one with the stock DuckDB CLI from PyPI,
converting an existing file, and an export that IMPORT DATABASE rebuilds."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from sharing import copy_of, rounded, sigwh, view_queries

from sigwarehouse import store
from sigwarehouse.store import file_format

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("storage")

# Each DuckDB CLI release line the test reads the warehouse with (the oldest and the
# newest 1.x that PyPI's duckdb-cli package offers).
CLI_VERSIONS = ["duckdb-cli>=1.4,<1.5", "duckdb-cli>=1.5,<2"]


@pytest.fixture(scope="module")
def filled(small_filled, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(small_filled[0], tmp_path_factory.mktemp("filled"))


@pytest.fixture(scope="session")
def pip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pip-cache")


@pytest.fixture(scope="session", params=CLI_VERSIONS)
def duckdb_cli(request, tmp_path_factory: pytest.TempPathFactory, pip_cache: Path) -> Path:
    """The `duckdb` executable of the duckdb-cli PyPI package, in a venv of its own."""
    venv = tmp_path_factory.mktemp("duckdb-cli-venv")
    env = {**os.environ, "PIP_CACHE_DIR": str(pip_cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    steps = [  # a venv without pip of its own (ensurepip takes seconds): ours installs
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         request.param],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"could not install {request.param} with pip: {' / '.join(tail)}")
    exe = venv / "bin" / "duckdb"
    if not exe.exists():
        pytest.skip(f"{request.param} installed no `duckdb` executable in {venv / 'bin'}")
    return exe


def _cli_rows(exe: Path, path: Path, query: str) -> list[tuple]:
    """Rows of `query` run by the stock CLI on the file, read-only, as strings."""
    done = subprocess.run(
        [str(exe), "-readonly", "-csv", str(path), "-c", query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (query, done.stderr)
    rows = list(csv.reader(io.StringIO(done.stdout)))
    return [tuple(row) for row in rows[1:]]


def _same(cli: str, value) -> bool:
    """Does the CLI's CSV text show this Python value (floats to 1e-9: sums in parallel
    differ in their last bits)?"""
    if value is None:
        return cli == "NULL"  # as the CLI's csv mode writes it
    if isinstance(value, bool):
        return cli == str(value).lower()
    if isinstance(value, float):
        return abs(float(cli) - value) <= 1e-9 * max(1.0, abs(value))
    return cli == str(value)


def _assert_same_rows(cli_rows: list[tuple], rows: list[tuple], what: str) -> None:
    assert len(cli_rows) == len(rows), what
    for got, want in zip(cli_rows, rows, strict=True):
        assert len(got) == len(want), what
        assert all(_same(a, b) for a, b in zip(got, want, strict=True)), (what, got, want)


def test_new_warehouses_are_written_in_a_storage_version_1x_readers_open(filled: Path) -> None:
    expected = file_format.STORAGE_NUMBERS[file_format.STORAGE_VERSION]
    # the file was created by init, then written by DuckDB 2.x (fill): still the same
    header = file_format.read_header(filled)
    assert header.storage_number == expected == 65
    assert header.oldest_reader == "1.2"
    con = duckdb.connect(str(filled), read_only=True)
    need = file_format.required_size(con)
    con.close()
    assert need is not None and 3 * 4096 < need <= header.size
    assert f"storage {expected} (DuckDB 1.2 or newer reads it)" in sigwh(filled, "info").output


def test_the_stock_duckdb_cli_reads_every_view(
    filled: Path, tmp_path: Path, duckdb_cli: Path
) -> None:
    path = copy_of(filled, tmp_path / "shared")
    before = path.read_bytes()
    with store.opened(path, read_only=True) as con:
        queries = view_queries(con)
        expected = {name: con.execute(q).fetchall() for name, q in queries.items()}
    assert set(queries) == {p.stem for p in store.view_files()}
    for name, query in queries.items():
        _assert_same_rows(_cli_rows(duckdb_cli, path, query), expected[name], name)
    assert len(expected["model_accuracy"]) > 0
    # and the tables, audio blobs included
    rows = _cli_rows(duckdb_cli, path, "SELECT count(*), sum(octet_length(audio)) FROM clips")
    with store.opened(path, read_only=True) as con:
        want = con.execute("SELECT count(*), sum(octet_length(audio)) FROM clips").fetchall()
    assert rows == [tuple(str(v) for v in want[0])]
    assert path.read_bytes() == before


def _plain_2x_warehouse(path: Path) -> Path:
    """A filled warehouse as DuckDB 2.x writes it when asked for nothing (not 1.x-readable)."""
    import small_warehouse

    duckdb.connect(str(path)).close()
    con = store.connect(path)
    store.migrate(con)
    con.close()
    small_warehouse.fill(path)
    return path


def test_convert_rewrites_an_existing_file_for_1x_readers(tmp_path: Path, duckdb_cli) -> None:
    path = _plain_2x_warehouse(tmp_path / "warehouse.duckdb")
    assert file_format.read_header(path).oldest_reader is None
    done = subprocess.run(
        [str(duckdb_cli), "-readonly", str(path), "-c", "SELECT 1"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "version number" in done.stderr
    original = path.read_bytes()
    with store.opened(path, read_only=True) as con:
        queries = view_queries(con)
        expected = {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()}
        counts = store.table_counts(con)
        next_clip = con.execute("SELECT last_value FROM duckdb_sequences()").fetchall()

    result = sigwh(path, "convert")
    assert result.exit_code == 0, result.output
    backup = path.with_name("warehouse.duckdb.bak")
    assert result.output == (
        f"{path}: storage 65 (DuckDB 1.2 or newer reads it), {len(counts)} tables, "
        f"{sum(n for _, n in counts):,} rows copied; the original is kept as {backup}\n"
    )
    assert backup.read_bytes() == original
    assert file_format.read_header(path).storage_number == 65
    with store.opened(path, read_only=True) as con:
        assert store.table_counts(con) == counts
        assert {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()} == expected
        assert con.execute("SELECT last_value FROM duckdb_sequences()").fetchall() == next_clip
    assert _cli_rows(duckdb_cli, path, "SELECT count(*) FROM model_accuracy") == [
        (str(len(expected["model_accuracy"])),)
    ]
    # a second conversion would overwrite the backup: refused
    result = sigwh(path, "convert")
    assert result.exit_code == 1
    assert result.output == f"error: {backup} exists; move it away or choose another --out\n"


def test_convert_to_another_file_and_refusals(filled: Path, tmp_path: Path) -> None:
    path = copy_of(filled, tmp_path / "w")
    before = path.read_bytes()
    out = tmp_path / "old-readers.duckdb"
    result = sigwh(path, "convert", "--storage-version", "v1.1.0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert file_format.read_header(out).storage_number == 64
    assert path.read_bytes() == before  # the source is left as it was
    result = sigwh(path, "convert", "--storage-version", "v0.9")
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown storage version 'v0.9'; choose one of v1.1.0")


def test_export_round_trips_through_import_database(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = sigwh(filled, "export", "--parquet", str(out))
    assert result.exit_code == 0, result.output
    n_views = len(store.view_files())
    with store.opened(filled, read_only=True) as con:
        tables = dict(store.table_counts(con))
        queries = view_queries(con)
        views_expected = {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()}
        tables_expected = {
            t: rounded(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables
        }
    assert result.output.startswith(f"wrote {len(tables)} tables and {n_views} views to {out};")

    fresh = duckdb.connect(str(tmp_path / "imported.duckdb"))
    try:
        fresh.execute(f"IMPORT DATABASE '{out}'")
        got_tables = {t: rounded(fresh.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
        got_views = {n: rounded(fresh.execute(q).fetchall()) for n, q in queries.items()}
    finally:
        fresh.close()
    assert got_tables == tables_expected
    assert got_views == views_expected
    assert all(views_expected[n] for n in ("model_accuracy", "alpha_transferability"))


def test_a_colleague_queries_the_parquet_export_in_place_with_the_views(
    filled: Path, tmp_path: Path, monkeypatch
) -> None:
    """on_parquet.sql, run by plain DuckDB from the export's folder (moved elsewhere, as a
    colleague would receive it), gives every view the warehouse gives, nothing imported."""
    import shutil

    out = tmp_path / "export"
    assert sigwh(filled, "export", "--parquet", str(out)).exit_code == 0
    received = shutil.move(out, tmp_path / "received")
    with store.opened(filled, read_only=True) as con:
        queries = view_queries(con)
        expected = {n: rounded(con.execute(q).fetchall()) for n, q in queries.items()}
    monkeypatch.chdir(received)
    fresh = duckdb.connect()
    try:
        fresh.execute(Path("on_parquet.sql").read_text())
        tables = {t for (t,) in fresh.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        got = {n: rounded(fresh.execute(q).fetchall()) for n, q in queries.items()}
    finally:
        fresh.close()
    assert tables == set()  # views over the files only
    assert got == expected and expected["alpha_transferability"]


def test_checks_on_a_file_this_process_holds_keep_duckdbs_lock(wh_path: Path) -> None:
    """POSIX locks drop when a process closes any descriptor of the file: the header
    checks must not open the file while a connection holds it, or another process could
    write it at the same time (two ingest jobs lost a run that way)."""
    probe = (
        "import duckdb, sys\n"
        "try:\n    duckdb.connect(sys.argv[1]).close(); print('opened')\n"
        "except duckdb.IOException as e:\n    print('locked' if 'lock' in str(e) else e)\n"
    )
    con = store.connect(wh_path)
    try:
        file_format.check_magic(wh_path)
        assert file_format.read_header(wh_path) is None  # not read while held here
        with store.opened(wh_path) as again:  # a second connection in this process
            again.execute("SELECT 1").fetchall()
        out = subprocess.run([sys.executable, "-c", probe, str(wh_path)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert out.stdout.strip() == "locked", out.stdout + out.stderr
    finally:
        con.close()
    assert file_format.read_header(wh_path) is not None  # free again: read as usual
