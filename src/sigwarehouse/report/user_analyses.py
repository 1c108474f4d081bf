"""The user's own analyses: Python files that `sigwh report` runs beside the shipped ones.

An analysis file is a module with one function, `run(con) -> Section`: `con` is the
report's read-only DuckDB connection to the warehouse (its tables, views and macros), and
the Section (sigwarehouse.report.Section, with Tables and Charts) is what the page shows.
Files whose name starts with "_" are left out. docs/analyses.md has a complete example.

Which files run is decided by the folders the user names (and the files in them), never
by anything read from the warehouse: a warehouse is data that others may have written.

A file that cannot be loaded (a syntax error, a failed import, no `run`) stops the report
before it opens the warehouse. A `run` that raises, or returns something other than a
Section, gives a section that says what failed; the rest of the report is still built,
and `failed` says so to the command (which then ends with exit status 1). So does a
section whose key, table or chart has another section's name (its files would overwrite
theirs) or a name that is not file-safe (`checked`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import duckdb

from sigwarehouse.errors import SigwhError
from sigwarehouse.report.sections import Section


@dataclass
class UserAnalysis:
    """One file's analysis, as the report is handed it (see sections.Analysis)."""

    path: Path
    module: ModuleType
    error: str | None = None  # what failed in the last run, in one line

    @property
    def key(self) -> str:
        """The section's anchor when the analysis failed (else the Section's own)."""
        return "user-" + "".join(c if c.isalnum() else "-" for c in self.path.stem.lower())

    def run(self, con: duckdb.DuckDBPyConnection) -> Section:
        try:
            section = self.module.run(con)
        except Exception as exc:
            if _interrupted(exc):
                raise
            return self.fail(describe(self.path, exc))
        if not isinstance(section, Section):
            found = type(section).__name__
            return self.fail(f"{self.path}: run(con) returned a {found}, not a Section")
        self.error = None
        return section

    def fail(self, error: str) -> Section:
        """The section in place of this analysis's: it says `error`."""
        self.error = error
        return Section(
            key=self.key,
            title=f"{self.path.name} (your analysis)",
            intro=f"The analysis in {self.path} did not run to its end.",
            missing=f"This analysis failed: {error}",
        )


FILE_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _names(section: Section) -> list[str]:
    """What a section's files and anchor are named by: its key, its tables, its charts."""
    return [
        f"section {section.key}",
        *(f"table {t.name}" for t in section.tables),
        *(f"chart {c.name}" for c in section.charts),
    ]


def checked(analyses: Sequence[object], sections: list[Section]) -> list[Section]:
    """`sections` (the analyses' results, in order), where a user's section that would
    overwrite another's files or anchor, or names a file unsafely, is replaced by one that
    says so (its analysis then counts as failed). The shipped sections' names win."""
    pairs = list(zip(analyses, sections, strict=True))
    taken = {n for a, s in pairs if not isinstance(a, UserAnalysis) for n in _names(s)}
    result = []
    for analysis, section in pairs:
        if isinstance(analysis, UserAnalysis) and analysis.error is None:
            names = _names(section)
            unsafe = [n for n in names if not FILE_SAFE.fullmatch(n.split(" ", 1)[1])]
            clash = [n for n in names if n in taken] or [n for n in names if names.count(n) > 1]
            if unsafe or clash:
                if unsafe:
                    kind, name = unsafe[0].split(" ", 1)
                    what = f"its {kind} name {name!r} is not file-safe (letters, digits, _ . -)"
                else:
                    what = f"its {clash[0]} has a name another section of the report has"
                section = analysis.fail(f"{analysis.path}: {what}: rename it")
            taken.update(_names(section))
        result.append(section)
    return result


def _interrupted(exc: Exception) -> bool:
    """Ctrl-C during the analysis's query (DuckDB's way of saying it): not the file's fault."""
    if isinstance(exc, duckdb.InterruptException):
        return True
    return isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted"


def describe(path: Path, exc: BaseException) -> str:
    """One line: the file, the line in it where `exc` arose (when known), and the error."""
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
        line = frames[-1].lineno if frames else None
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    text = (text.strip().splitlines() or [""])[0]
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {type(exc).__name__}" + (f": {text}" if text else "")


def analysis_files(folder: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """The analysis files of `folder`, by name: its *.py files not starting with "_" and
    not named (without .py) in `skip`."""
    return [
        p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_") and p.stem not in skip
    ]


def load(folder: Path, skip: frozenset[str] = frozenset()) -> list[UserAnalysis]:
    """Import the analysis files of `folder` (see analysis_files), in name order.

    Raises SigwhError, naming the file, when one cannot be imported or has no run.
    """
    found = []
    for path in analysis_files(folder, skip):
        module = _import(path.resolve())
        if not callable(getattr(module, "run", None)):
            raise SigwhError(
                f"{path}: defines no run(con) function; an analysis module must define "
                "run(con) returning a sigwarehouse.report.Section (see docs/analyses.md), "
                "or have a name starting with _ to be left out"
            )
        found.append(UserAnalysis(path.resolve(), module))
    return found


def _import(path: Path) -> ModuleType:
    # A name of its own per file (two folders may both have a summary.py), kept in
    # sys.modules while it runs: dataclasses and pickling look a module up there.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    name = f"sigwh_user_analysis_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SigwhError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SigwhError(
            f"{describe(path, exc)} (while loading this analysis module: fix it, or "
            "rename it to start with _ to leave it out)"
        ) from exc
    return module
