"""Build the report: run the analyses it is handed on a read-only warehouse and write one
HTML page, a section per analysis, in the order given.

Output folder layout:
    index.html          the self-contained page (open it in any browser, offline)
    charts/NAME.svg|png each chart, rendered by vl-convert
    tables/NAME.csv     each table
    .fingerprint.json   what the warehouse looked like at the last build (--if-changed)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sigwarehouse import __version__
from sigwarehouse import store as warehouse
from sigwarehouse.errors import SigwhError
from sigwarehouse.report import html, user_analyses
from sigwarehouse.report.sections import Analysis
from sigwarehouse.store import sql_files, views

REPORT_FORMAT = 2  # bump when the page changes, so --if-changed rebuilds old reports
FINGERPRINT_FILE = ".fingerprint.json"
# DuckDB's memory while the analyses run: the rest of a report's process (Python, the
# analyses' per-clip numbers, the charts) stays within a few hundred MB, so a report at
# 10^8 signal rows stays within 2 GB. Larger aggregates spill to a temporary folder of
# their own (a shared warehouse's folder may not be writable).
DUCKDB_MEMORY = "512MB"
CHART_THREADS = 2  # charts drawn at a time (vl-convert releases the GIL)


@dataclass
class ReportResult:
    """What build_report did: `built` is False when --if-changed found nothing new."""

    out_dir: Path
    index: Path
    built: bool
    message: str
    sections: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # sections without data
    failed: list[str] = field(default_factory=list)  # a user analysis's error, one line each
    files: list[Path] = field(default_factory=list)
    n_examples: int = 0
    seconds: float = 0.0


def fingerprint(con, path: Path, code: Sequence[Path]) -> dict:
    """What identifies the warehouse's content: row counts, the latest run end, and the
    size and modification time of the file and its write-ahead log; and the code of the
    report and of its analyses (`code`: their folders, see code_folders).

    Any write changes at least one of them; a change that is not a write (e.g. a
    checkpoint) may too, which costs only an unneeded rebuild.
    """
    stats = {}
    for p in (path, path.with_name(path.name + ".wal")):
        if p.exists():
            st = p.stat()
            stats[p.name] = [st.st_size, st.st_mtime_ns]
    counts = dict(warehouse.table_counts(con))
    last_run = None
    if "runs" in counts:
        sql = "SELECT max(coalesce(ended_at, started_at))::VARCHAR FROM runs"
        last_run = con.execute(sql).fetchall()[0][0]  # fetchall: leaves no open result
    return {
        "files": stats,
        "counts": counts,
        "last_run": last_run,
        "code": [__version__, REPORT_FORMAT, _code_digest(code)],
    }


def code_folders(analyses: Sequence[Analysis]) -> list[Path]:
    """The folders of the analyses' source: an analysis counts with every module beside it
    (the helpers it shares with the others)."""
    sources = []
    for analysis in analyses:
        source = getattr(analysis, "module", analysis)  # a user's file: its module
        sources.append(inspect.getfile(source if inspect.ismodule(source) else type(source)))
    return sorted({Path(source).resolve().parent for source in sources})


def _code_digest(folders: Sequence[Path]) -> str:
    """A hash of the analyses', the report's and the views' source, so that upgrading any
    of them makes --if-changed rebuild even when the warehouse did not change."""
    digest = hashlib.sha256()
    for folder in [*sorted(folders), Path(__file__).parent]:
        for source in sorted(folder.glob("*.py")):
            digest.update(source.name.encode() + source.read_bytes())
    for source in sql_files.view_files():  # the report reads through the package's views
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def unchanged(
    warehouse_path: str | Path, out_dir: str | Path, code: Sequence[Path]
) -> ReportResult | None:
    """The result of `--if-changed` when the report in out_dir is of the warehouse as it
    is, and of the code in the folders `code` (see code_folders); else None.

    Reads only the file's row counts and latest run, so a scheduled job decides in about
    a second, at any size, without importing the analyses.
    Raises SigwhError when the warehouse cannot be opened.
    """
    path, out = Path(warehouse_path), Path(out_dir)
    index = out / "index.html"
    if not index.exists():
        return None
    # Only what the fingerprint reads: no views, and neither the length nor the layout
    # checked (an unchanged file is the one the last build read whole; a changed one gets
    # both checks from the build).
    con = warehouse.connect(
        path, read_only=True, package_views=False, allow_damaged=True, check_length=False
    )
    try:
        digest = _digest(fingerprint(con, path, code))
    finally:
        con.close()
    if _previous_digest(out) != digest:
        return None
    return ReportResult(out, index, False, f"{index}: unchanged since the last build, not rebuilt")


def _digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()


def _previous_digest(out_dir: Path) -> str | None:
    try:
        return json.loads((out_dir / FINGERPRINT_FILE).read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return None


def _vl_version() -> str | None:
    """The Vega-Lite version Altair writes, in vl-convert's spelling (e.g. '6.4')."""
    import altair as alt  # altair, vl_convert: only when charts are drawn
    import vl_convert as vlc  # vl_convert: only when charts are drawn

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vlc.get_vegalite_versions() else None


def _write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def build_report(
    warehouse_path: str | Path,
    out_dir: str | Path,
    analyses: Sequence[Analysis],
    if_changed: bool = False,
    chart_files: bool = True,
) -> ReportResult:
    """Write the report of the warehouse into out_dir (created if needed): a section per
    analysis, in the order given (`sigwarehouse.analyses.REPORT` is the whole page).

    Opens the warehouse read-only. With if_changed, returns without writing (built False)
    when the warehouse looks as it did at the last build into out_dir. Sections without
    data say so in the page. chart_files=False skips the SVG/PNG files (the page does
    not need them). Raises SigwhError when the warehouse cannot be opened or the output
    folder cannot be written.
    """
    started = time.monotonic()
    path, out = Path(warehouse_path), Path(out_dir)
    index = out / "index.html"
    code = code_folders(analyses)
    if if_changed and (result := unchanged(path, out, code)):
        return result
    with tempfile.TemporaryDirectory(prefix="sigwh-report-") as spill:
        con = warehouse.connect(
            path, read_only=True, settings={"memory_limit": DUCKDB_MEMORY, "temp_directory": spill}
        )
        result, digest, fp = _build(con, path, out, analyses, code, chart_files)
    failed = [a for a in analyses if getattr(a, "error", None)]
    result.failed = [a.error for a in failed]
    result.missing = [k for k in result.missing if k not in {a.key for a in failed}]
    if result.failed:
        # No fingerprint: the next --if-changed builds again, and says the error again.
        (out / FINGERPRINT_FILE).unlink(missing_ok=True)
    else:
        _write_atomic(out / FINGERPRINT_FILE, json.dumps({"digest": digest, **fp}, indent=1))
    result.seconds = time.monotonic() - started
    result.message = (
        f"wrote {index} ({index.stat().st_size / 1e6:.1f} MB, {len(result.sections)} sections, "
        f"{result.n_examples} listenable examples, {len(result.files)} chart/table files) "
        f"in {result.seconds:.1f} s"
    )
    if result.missing:
        result.message += f"; no data yet for: {', '.join(result.missing)}"
    if result.failed:
        result.message += f"; {len(result.failed)} of your analyses failed (their sections say why)"
    return result


def _build(con, path: Path, out: Path, analyses, code, chart_files: bool):
    """The report of the open warehouse (closed after): (result, digest, fingerprint)."""
    try:
        _require_views(con, path)
        _snapshot_parameter_sets(con)
        fp = fingerprint(con, path, code)
        digest = _digest(fp)
        try:
            out.mkdir(parents=True, exist_ok=True)
            result = _render(con, path, out, analyses, chart_files)
        except OSError as exc:
            raise SigwhError(f"cannot write the report to {out}: {exc}") from exc
    finally:
        con.close()
    return result, digest, fp


def _snapshot_parameter_sets(con) -> None:
    """Compute view parameter_sets (a scan of every explanation: 4 million rows at 10^8
    signal rows) once for the report, which reads it dozens of times through the views:
    a TEMP view of the same name, over a TEMP table, shadows it on this connection. The
    warehouse cannot change meanwhile (DuckDB lets no process write while it is open)."""
    con.execute("CREATE TEMP TABLE _report_parameter_sets AS FROM parameter_sets")
    con.execute("CREATE OR REPLACE TEMP VIEW parameter_sets AS FROM _report_parameter_sets")


def _require_views(con, path: Path) -> None:
    """Refuse a warehouse that predates views the analyses read (they would fail midway)."""
    missing = views.unavailable(con)
    if missing:
        raise SigwhError(
            f"{path} has migrations pending, and the report needs views that read their "
            f"tables ({', '.join(missing)}): run `sigwh migrate` on it (or on a copy) first"
        )


def _draw(spec: dict, vl_version: str | None) -> tuple[str, bytes]:
    """A chart's SVG, and its PNG drawn from the SVG (the same bytes as from the spec,
    without running Vega twice)."""
    import vl_convert as vlc  # vl_convert: only when charts are drawn

    svg = vlc.vegalite_to_svg(spec, vl_version=vl_version)
    return svg, vlc.svg_to_png(svg, scale=2)


def _write_sections(out: Path, sections, specs, drawings, result: ReportResult):
    """Write each section's tables and charts; (body, table of contents) of the page."""
    body, toc, n_chart = [], [], 0
    for section, group, drawn in zip(sections, specs, drawings, strict=True):
        csv_paths = {}
        for table in section.tables:
            csv = out / "tables" / f"{table.name}.csv"
            table.frame.write_csv(csv)
            csv_paths[table.name] = f"tables/{table.name}.csv"
            result.files.append(csv)
        rendered = []
        for chart, spec, drawing in zip(section.charts, group, drawn, strict=True):
            files = []
            if drawing is not None:
                svg = out / "charts" / f"{chart.name}.svg"
                png = out / "charts" / f"{chart.name}.png"
                svg_text, png_bytes = drawing.result()
                svg.write_text(svg_text, encoding="utf-8")
                png.write_bytes(png_bytes)
                files = [f"charts/{svg.name}", f"charts/{png.name}"]
                result.files += [svg, png]
            n_chart += 1
            rendered.append(
                (n_chart, html.RenderedChart(chart.name, chart.caption, spec, files, chart.group))
            )
        body.append(html.section_html(section, rendered, csv_paths))
        toc.append((section.key, section.short_title or section.title))
        result.sections.append(section.key)
        if section.missing:
            result.missing.append(section.key)
        result.n_examples += len(section.examples)
    return body, toc


def _render(
    con, path: Path, out: Path, analyses: Sequence[Analysis], chart_files: bool
) -> ReportResult:
    import vl_convert as vlc  # vl_convert: only when charts are drawn

    vl_version = _vl_version()
    # The page's Vega bundle takes seconds to build (once a process), most of it not on
    # this thread's CPU: it is built on another thread while the analyses run.
    with ThreadPoolExecutor(1) as pool:
        bundle = pool.submit(vlc.javascript_bundle, vl_version=vl_version)
        sections = user_analyses.checked(analyses, [analysis.run(con) for analysis in analyses])
        javascript = bundle.result()
    result = ReportResult(out, out / "index.html", True, "")
    (out / "charts").mkdir(exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    # Specs unvalidated: the analyses' charts are drawn by the tests (a second of jsonschema
    # a report otherwise). vl-convert draws on other threads, two charts at a time.
    specs = [[chart.chart.to_dict(validate=False) for chart in s.charts] for s in sections]
    with ThreadPoolExecutor(CHART_THREADS) as pool:
        drawings = [
            [pool.submit(_draw, spec, vl_version) if chart_files else None for spec in group]
            for group in specs
        ]
        body, toc = _write_sections(out, sections, specs, drawings, result)
    meta = [
        f"warehouse {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB)",
        f"built {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z} "
        f"by sigwarehouse {__version__}",
        "; ".join(f"{n} {t}" for t, n in warehouse.table_counts(con) if t != "schema_migrations"),
    ]
    page = html.page(
        title="sigwarehouse report",
        meta_lines=meta,
        body_sections=toc,
        body="\n".join(body),
        javascript=javascript,
        below_minimum=[reason for section in sections for reason in section.below_minimum],
    )
    _write_atomic(out / "index.html", page)
    return result
