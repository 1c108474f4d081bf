"""`sigwh report`: one self-contained HTML page of the sections it is handed.

See `build.build_report`. The report renders `sections.Section`s (tables, charts, audio,
listenable examples) and does not choose them: `sigwarehouse.analyses.build_report`
hands it every analysis, in page order. It renders charts (vl-convert) and writes the
page.
"""

from sigwarehouse.report.build import ReportResult, build_report, unchanged
from sigwarehouse.report.sections import Chart, Section, Table

# Section, Table and Chart: what a user's analysis returns (docs/analyses.md)
__all__ = ["Chart", "ReportResult", "Section", "Table", "build_report", "unchanged"]
