"""Analyses: one module per result, DuckDB in, tables and Altair charts out.

This is the repository's top-level analyses/ folder; the wheel installs it as
sigwarehouse/analyses (see sigwarehouse/shipped.py). Each module has
`run(con) -> sigwarehouse.report.Section`. `run_all` runs every analysis; `build_report`
hands the report its sections in page order (`report_analyses`): the results, the user's
own analyses (the other files of this folder, and of the folders `sigwh report --analyses`
names: sigwarehouse.report.user_analyses), the listenable examples that illustrate the
results and their spectra, then how the data was made.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from sigwarehouse.errors import SigwhError
from sigwarehouse.report import user_analyses
from sigwarehouse.report.sections import Analysis, Section

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
FOLDER = Path(__file__).resolve().parent
# What this folder ships besides REPORT: the analyses' shared helpers. Any other file of
# the folder is the user's own analysis.
HELPERS = ("common", "inference")
SHIPPED = frozenset((*(m.__name__.rpartition(".")[2] for m in REPORT), *HELPERS))


def user_folders(extra: Sequence[Path] = ()) -> list[Path]:
    """The folders whose analysis files the report runs besides REPORT: this one, and
    `extra` (each once). Raises SigwhError for an extra folder that is missing or has no
    analysis file (a mistyped --analyses)."""
    folders = [FOLDER]
    for folder in extra:
        if not Path(folder).is_dir():
            raise SigwhError(f"--analyses {folder}: no such folder")
        if not user_analyses.analysis_files(Path(folder)):
            raise SigwhError(
                f"--analyses {folder}: no analysis file in it (a NAME.py with run(con); "
                "see docs/analyses.md)"
            )
        if Path(folder).resolve() not in folders:
            folders.append(Path(folder).resolve())
    return folders


def report_analyses(extra: Sequence[Path] = ()) -> list[Analysis]:
    """The report's analyses in page order: the results, the user's own (see
    user_folders; by folder, then file name), the examples, their spectra, provenance.
    Raises SigwhError when a user's file cannot be loaded."""
    users = []
    for folder in user_folders(extra):
        users += user_analyses.load(folder, skip=SHIPPED if folder == FOLDER else frozenset())
    return [*RESULTS, *users, examples, spectra, provenance]


def run_all(con: duckdb.DuckDBPyConnection) -> list[Section]:
    """Every analysis's Section (missing data gives a Section that says so)."""
    return [module.run(con) for module in MODULES]


def build_report(
    warehouse_path: str | Path,
    out_dir: str | Path,
    if_changed: bool = False,
    chart_files: bool = True,
    analyses: Sequence[Path] = (),
) -> report.ReportResult:
    """`sigwh report`: report.build_report handed report_analyses(analyses): the shipped
    sections and the user's own, from this folder and the folders `analyses`."""
    return report.build_report(
        warehouse_path,
        out_dir,
        report_analyses(analyses),
        if_changed=if_changed,
        chart_files=chart_files,
    )
