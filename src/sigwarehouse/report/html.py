"""Render the report page: sections, tables, charts (Vega-Lite, drawn in the page) and audio.

The page is one self-contained file: the Vega, Vega-Lite and Vega-Embed JavaScript comes
inlined from vl-convert-python's bundle, chart data is inline in each spec, and audio is
inline as WAV data URIs. Nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from dataclasses import dataclass

import polars as pl

from sigwarehouse.report.sections import Example, Section, Table

MAX_ROWS = 200  # rows of a table shown in the page; all are in its CSV
LONG_TEXT = 40  # characters: a longer text cell (a message, an example error) wraps

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; vertical-align: bottom; }
td.text { text-align: left; }
td.long { white-space: normal; min-width: 16em; text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
.missing { background: #fff4e0; border-left: 4px solid #f0a020; padding: .5em 1em; }
.note { color: #555; } .meta { color: #555; font-size: 12px; }
figure { margin: 1em 0; } figcaption { color: #444; font-size: 12px; }
.example { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; margin: 1em 0; }
td.yes { background: #e3f4e3; } td.no { background: #fbe4e4; }
audio { height: 32px; width: 260px; }
.wide { overflow-x: auto; }
.wide::-webkit-scrollbar { height: 10px; }  /* a table wider than the page shows it scrolls */
.wide::-webkit-scrollbar-thumb { background: #bbb; border-radius: 5px; }
.wide::-webkit-scrollbar-track { background: #f3f3f3; }
"""

_RENDER_JS = """
document.querySelectorAll('div.chart').forEach(function (el) {
  var spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
  vegaEmbed(el, spec, {actions: false, renderer: 'svg'})
    .then(function () { el.dataset.rendered = 'yes'; })
    .catch(function (err) {
      el.dataset.rendered = 'failed';
      el.textContent = 'This chart could not be drawn: ' + err;
      console.error(err);
    });
});
"""


@dataclass
class RenderedChart:
    """A chart as the page needs it: its spec and where its files are, relative to the page."""

    name: str
    caption: str
    spec: dict
    files: list[str]
    group: str | None = None


def _cell(value: object) -> tuple[str, str]:
    """(text, css class) of one table cell."""
    if value is None:
        return "–", ""
    if isinstance(value, bool):
        return ("yes" if value else "no"), ""
    if isinstance(value, float):
        if value != value:
            return "–", ""
        # three decimals suit shares and p-values; tiny non-zero values keep their digits
        return (f"{value:.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2g}"), ""
    if isinstance(value, int):
        return str(value), ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S"), "text"
    text = str(value)
    return text, "text long" if len(text) > LONG_TEXT else "text"


def table_html(table: Table, csv_path: str | None) -> str:
    """One table as HTML, at most MAX_ROWS rows, linking to its CSV."""
    frame: pl.DataFrame = table.frame
    # Headers may wrap at spaces and after underscores (avg_out_<wbr>nonempty), so a wide
    # table's columns are as wide as their values rather than their names.
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in frame.columns)
    body = []
    for row in frame.head(MAX_ROWS).iter_rows():
        cells = (_cell(v) for v in row)
        body.append(
            "<tr>" + "".join(f'<td class="{k}">{html.escape(t)}</td>' for t, k in cells) + "</tr>"
        )
    caption = html.escape(table.caption)
    if csv_path:
        caption += f' <a class="meta" href="{html.escape(csv_path)}">CSV</a>'
    more = ""
    if frame.height > MAX_ROWS:
        more = f'<p class="note">{frame.height - MAX_ROWS} more rows in the CSV.</p>'
    return (
        f'<div class="wide"><table><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def _json_for_script(data: object) -> str:
    # "</" inside a <script> element would end it early; "<\/" is the same JSON string.
    return json.dumps(data).replace("</", "<\\/")


def chart_html(chart: RenderedChart, index: int) -> str:
    links = " ".join(
        f'<a href="{html.escape(f)}">{html.escape(f.rsplit(".", 1)[-1].upper())}</a>'
        for f in chart.files
    )
    return (
        f'<figure><div class="chart" id="chart-{index}" data-spec="spec-{index}" '
        f'data-name="{html.escape(chart.name)}"></div>'
        f'<script type="application/json" id="spec-{index}">{_json_for_script(chart.spec)}</script>'
        f"<figcaption>{html.escape(chart.caption)} <span class=meta>{links}</span></figcaption>"
        "</figure>"
    )


def _audio(wav: bytes) -> str:
    data = base64.b64encode(wav).decode("ascii")
    return f'<audio controls preload="auto" src="data:audio/wav;base64,{data}"></audio>'


def example_html(example: Example) -> str:
    """One clip explained by one model: a row per signal, a column per model of the task."""
    e = example
    head = "<th>signal</th><th>listen</th><th>kept</th>" + "".join(
        f"<th>{html.escape(t)}</th>" for t in e.targets
    )
    rows = []
    for s in e.signals:
        cells = [f'<td class="text">{s.kind}</td>']
        if s.wav is None:
            cells.append(
                f'<td class="text" colspan="{len(e.targets) + 2}">{html.escape(s.note or "")}</td>'
            )
        else:
            cells += [f"<td>{_audio(s.wav)}</td>", f"<td>{html.escape(s.kept)}</td>"]
            for t in e.targets:
                v = s.verdicts.get(t)
                if v is None:
                    cells.append('<td class="text">not evaluated</td>')
                else:
                    mark = "yes" if v.accepted else "no"
                    cells.append(
                        f'<td class="text {mark}">{html.escape(v.label)} ({v.prob:.2f})</td>'
                    )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    title = (
        f"<b>{html.escape(e.model)}</b> on clip {e.clip_id} "
        f"(<code>{html.escape(e.dataset)}/{html.escape(e.path)}</code>, label "
        f"<b>{html.escape(e.label)}</b>): {html.escape(e.model)} says "
        f"<b>{html.escape(e.model_class)}</b> ({e.model_conf:.2f})"
    )
    return (
        f'<div class="example"><p>{title}</p><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def section_html(
    section: Section, charts: list[tuple[int, RenderedChart]], csv_paths: dict[str, str]
) -> str:
    parts = [
        f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>',
        f"<p>{html.escape(section.intro)}</p>",
    ]
    if section.missing:
        parts.append(f'<p class="missing">{html.escape(section.missing)}</p>')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
    # Items without a group first, then each group under its own heading, charts first.
    items = [*section.charts, *section.tables, *section.audio, *section.examples]
    order = [None] + list(dict.fromkeys(x.group for x in items))
    for group in dict.fromkeys(order):
        if group is not None:
            parts.append(f"<h3>{html.escape(group)}</h3>")
        parts += [chart_html(c, i) for i, c in charts if c.group == group]
        parts += [
            table_html(t, csv_paths.get(t.name))
            for t in section.tables
            if t.in_page and t.group == group
        ]
        parts += [
            f'<p class="listen">{html.escape(a.caption)}<br>{_audio(a.wav)}</p>'
            for a in section.audio
            if a.group == group
        ]
        parts += [example_html(e) for e in section.examples if e.group == group]
    offpage = [t for t in section.tables if not t.in_page and t.name in csv_paths]
    parts += [
        f'<p class="note">{html.escape(t.caption)} <a href="{csv_paths[t.name]}">CSV</a></p>'
        for t in offpage
    ]
    parts.append("</section>")
    return "\n".join(parts)


def page(
    *,
    title: str,
    meta_lines: list[str],
    body_sections: list[tuple[str, str]],  # (anchor, title) for the table of contents
    body: str,
    javascript: str,
    below_minimum: list[str] | None = None,
) -> str:
    """The whole page; `javascript` is the inlined Vega bundle. `below_minimum` lists the
    sections whose tests had fewer clips than their minimum, and why: when there is any,
    the page says at its top that its figures are illustrative."""
    toc = " · ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in body_sections)
    meta = "<br>".join(html.escape(line) for line in meta_lines)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{javascript}</script></head>\n<body>"
        f'<h1>{html.escape(title)}</h1><p class="meta">{meta}</p>'
        f"{illustrative_html(below_minimum or [])}<nav>{toc}</nav>\n{body}\n"
        f"<script>{_RENDER_JS}</script></body></html>\n"
    )


ILLUSTRATIVE = (
    "The figures of this page are illustrative: this warehouse has too few clips for some "
    "of its tests, which are reported as not tested instead of with a statistic, a "
    "p-value or an interval, and its estimates are too uncertain to cite. Explain more "
    "clips (`sigwh dataset add NAME`, then `sigwh ingest`) before drawing conclusions."
)


def illustrative_html(reasons: list[str]) -> str:
    """The warning at the top of the page ('' when every test had its minimum)."""
    if not reasons:
        return ""
    items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    return (
        f'<div class="missing" id="illustrative"><p><b>{html.escape(ILLUSTRATIVE)}</b></p>'
        f"<ul>{items}</ul></div>"
    )
