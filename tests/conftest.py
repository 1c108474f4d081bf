"""Shared fixtures: real warehouse files in tmp paths, and the CLI driven through CliRunner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import small_warehouse
from sharing import copy_of
from typer.testing import CliRunner

from sigwarehouse import store
from sigwarehouse.cli import app

REPO = Path(__file__).resolve().parents[1]

# Under `make mutation` mutmut runs each mutant's tests with -x, in collection order: the
# engine's unit tests go first, so most mutants fail in a second instead of after the
# tone-model explanations (about 40 s a mutant otherwise).
FAST_FIRST = (
    "test_search_units.py", "test_oracle_units.py", "test_responsibility_units.py",
    "test_engine_edges.py",
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "list_all_tests"):
        return
    items.sort(key=lambda item: item.path.name not in FAST_FIRST)  # stable: the rest keep order


@pytest.fixture(scope="session")
def _initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file freshly initialised, once per session (worker): nothing opens it."""
    path, _ = store.init(tmp_path_factory.mktemp("initialised") / "warehouse.duckdb")
    return path


@pytest.fixture
def wh_path(_initialised: Path, tmp_path: Path) -> Path:
    """A freshly initialised warehouse file at the current schema: a copy of one made
    once (init applies every migration, ~150 ms; a copy takes ~2 ms)."""
    return copy_of(_initialised, tmp_path)


@pytest.fixture(scope="session")
def small_filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, small_warehouse.Filled]:
    """The small hand-made ingest result (tests/small_warehouse.py) and what it inserted,
    built once for the session. Nothing opens it: each user takes a copy
    (sharing.copy_of), so no test sees another's writes."""
    path, _ = store.init(tmp_path_factory.mktemp("small-filled") / "warehouse.duckdb")
    return path, small_warehouse.fill(path)


@pytest.fixture
def cli(wh_path: Path):
    """Run `sigwh --warehouse <wh_path> ARGS...`; returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str, expect: int | None = 0):
        result = runner.invoke(app, ["--warehouse", str(wh_path), *args])
        if expect is not None:
            assert result.exit_code == expect, (result.output, result.exception)
        return result

    return invoke
