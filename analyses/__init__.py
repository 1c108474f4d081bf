"""Analyses: one module per result, DuckDB in, tables and Altair charts out.

Each module has `run(con) -> analyses.common.Section`; `run_all` runs them in report
order. `sigwh report` renders what they return.
"""

from __future__ import annotations

from types import ModuleType

import duckdb

from analyses import (
    accuracy,
    asr_fidelity,
    beta_curve,
    bootstrap,
    composition,
    flat_earthers,
    label_transfer,
    provenance,
    silence,
    spectral_entropy,
    sufficient_vs_complete,
    transferability,
)
from analyses.common import Section

MODULES: tuple[ModuleType, ...] = (
    accuracy,
    transferability,
    silence,
    sufficient_vs_complete,
    beta_curve,
    bootstrap,
    flat_earthers,
    # the deepfake analyses (section 5 of the paper); provenance stays last, as the
    # report puts the listenable examples just before the last section
    composition,
    spectral_entropy,
    label_transfer,
    asr_fidelity,
    provenance,
)


def run_all(con: duckdb.DuckDBPyConnection) -> list[Section]:
    """Every analysis's Section, in report order (missing data gives a Section that says so)."""
    return [module.run(con) for module in MODULES]
