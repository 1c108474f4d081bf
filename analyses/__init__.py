"""Analyses: one module per result, DuckDB in, tables and Altair charts out.

Each module has `run(con) -> sigwarehouse.report.sections.Section`. `run_all` runs
every analysis; `build_report` hands the report its sections in page order (`REPORT`):
the results, the listenable examples that illustrate them and their spectra, then how
the data was made.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import duckdb

from sigwarehouse import report
from sigwarehouse.analyses import (
    accuracy,
    asr_fidelity,
    beta_curve,
    bootstrap,
    composition,
    examples,
    flat_earthers,
    label_transfer,
    multiplicity,
    pretrained,
    provenance,
    silence,
    spectra,
    spectral_entropy,
    sufficient_vs_complete,
    transferability,
)
from sigwarehouse.report.sections import Section

RESULTS: tuple[ModuleType, ...] = (
    accuracy,
    transferability,
    silence,
    sufficient_vs_complete,
    beta_curve,
    bootstrap,
    flat_earthers,
    multiplicity,
    pretrained,
    # the deepfake analyses (section 5 of the paper)
    composition,
    spectral_entropy,
    label_transfer,
    asr_fidelity,
)
MODULES: tuple[ModuleType, ...] = (*RESULTS, provenance)
REPORT: tuple[ModuleType, ...] = (*RESULTS, examples, spectra, provenance)


def run_all(con: duckdb.DuckDBPyConnection) -> list[Section]:
    """Every analysis's Section (missing data gives a Section that says so)."""
    return [module.run(con) for module in MODULES]


def build_report(
    warehouse_path: str | Path,
    out_dir: str | Path,
    if_changed: bool = False,
    chart_files: bool = True,
) -> report.ReportResult:
    """`sigwh report`: report.build_report handed every section of REPORT."""
    return report.build_report(
        warehouse_path, out_dir, REPORT, if_changed=if_changed, chart_files=chart_files
    )
