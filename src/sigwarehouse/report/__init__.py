"""`sigwh report`: one self-contained HTML page with every analysis the warehouse supports.

See `build.build_report`. The analyses themselves live in the top-level `analyses`
package; this package runs them, renders charts (vl-convert), rebuilds listenable
signals from stored audio and masks, and writes the page.
"""

from sigwarehouse.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
