"""What the report renders: sections of tables, charts, audio and listenable examples.

The report does not choose its sections: it is handed a list of analyses (anything
with `run(con) -> Section`, usually a module of `sigwarehouse.analyses`) and renders
what they return, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import altair as alt
    import duckdb
    import polars as pl


@dataclass
class Table:
    """A named result table; `frame` is what a user would query or export."""

    name: str  # file-safe, unique within the report
    caption: str
    frame: pl.DataFrame
    in_page: bool = True  # False: too long to read, written as CSV only
    group: str | None = None  # shown under this sub-heading, with the group's charts


@dataclass
class Chart:
    """A named Altair chart with the sentence that says how to read it."""

    name: str  # file-safe, unique within the report
    caption: str
    chart: alt.TopLevelMixin
    group: str | None = None  # shown under this sub-heading, with the group's tables


@dataclass
class Audio:
    """A listenable signal (WAV bytes) with the sentence that says what it is."""

    name: str  # file-safe, unique within the report
    caption: str
    wav: bytes
    group: str | None = None  # shown under this sub-heading, with the group's tables


@dataclass
class Verdict:
    """What one model said about one signal."""

    label: str
    prob: float
    accepted: bool  # its top-1 class is the explained model's class for the clip


@dataclass
class ExampleSignal:
    kind: str  # original, sufficient, complete, inverse
    wav: bytes | None  # None when the signal does not exist (no complete mask)
    kept: str  # e.g. "812 of 24001 bins"
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    note: str | None = None


@dataclass
class Example:
    """One clip as explained by one model, with its four signals."""

    model: str
    task: str
    clip_id: int
    dataset: str
    path: str
    label: str
    model_class: str
    model_conf: float
    params_hash: str
    targets: list[str]
    signals: list[ExampleSignal]

    @property
    def group(self) -> str:
        """Examples are shown under their task's heading."""
        return self.task


@dataclass
class Section:
    """One result: what it is, its tables and charts, or why it could not be computed."""

    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    missing: str | None = None  # set when the warehouse lacks the data; tables then empty
    notes: list[str] = field(default_factory=list)
    audio: list[Audio] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    short_title: str | None = None  # its name in the table of contents (default: title)
    # why some of its figures are illustrative (a test below its minimum n): the page
    # repeats these at its top
    below_minimum: list[str] = field(default_factory=list)


class Analysis(Protocol):
    """What the report is handed: a module (or object) whose run gives its Section. It
    never raises for missing data: the Section's `missing` says what is absent."""

    def run(self, con: duckdb.DuckDBPyConnection) -> Section: ...
