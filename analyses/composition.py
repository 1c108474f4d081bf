"""Global composition (the paper's section 5.1, table 4 and figure 3).

The degree of compositionality per model and class comes from the `compositionality`
view; the power spectral density of each class composite is Welch's estimate
(`scipy.signal.welch`, Hann window of 1024 samples, half overlap, density scaling) of the
stored composite audio, drawn in dB per model, one line per class.
"""

from __future__ import annotations

import altair as alt
import duckdb
import numpy as np
import polars as pl
from scipy.signal import welch

from sigwarehouse.analyses.common import count, groups, has_relations, query, slug
from sigwarehouse.audio import decode_flac, wav_bytes
from sigwarehouse.report.sections import Audio, Chart, Section, Table

TITLE = "Global composition (real vs fake signatures)"
INTRO = (
    "For each model and class c, `sigwh compose` superimposes (mean) the model's "
    "sufficient signals of c from different clips, in a seeded order, keeping each one "
    "while the model still says c. The degree of compositionality is |κ| / candidates "
    "(view `compositionality`, the paper's table 4). Candidates are the non-empty "
    "sufficient signals; `n_empty` counts those whose mask keeps no bin (the model gives "
    "c to silence), for which no composite is made. The composite's Welch power spectral "
    "density is the class's global signature (the paper's figure 3)."
)
NPERSEG = 1024


def degree_table(frame: pl.DataFrame, labels: list[str]) -> pl.DataFrame:
    """Table 4: a row per (task, dataset, model, seed), a degree column per class in
    task label order."""
    index = ["task", "dataset", "params_hash", "seed", "model"]
    wide = frame.pivot(on="class", index=index, values="degree").sort(index)
    return wide.select(*index, *[c for c in labels if c in wide.columns])


def composites(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(task, dataset, params_hash, seed, model, class label, FLAC bytes) of each composite."""
    return con.execute(
        """
        SELECT m.task, k.dataset, k.params_hash, k.seed, k.model, t.labels[k.class + 1],
               k.audio
        FROM composites AS k JOIN models AS m USING (model) JOIN tasks AS t ON t.task = m.task
        WHERE k.audio IS NOT NULL
        ORDER BY ALL
        """
    ).fetchall()


def psd_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Welch PSD (dB) of every stored composite: task, dataset, params_hash, seed, model,
    class, freq_hz, psd_db."""
    parts = []
    for task, dataset, ph, seed, model, label, audio in composites(con):
        x, rate = decode_flac(audio)
        freqs, psd = welch(x.astype(np.float64), fs=rate, nperseg=min(NPERSEG, len(x)))
        parts.append(
            pl.DataFrame(
                {
                    "freq_hz": freqs,
                    "psd_db": 10 * np.log10(np.maximum(psd, 1e-20)),
                }
            ).with_columns(
                task=pl.lit(task),
                dataset=pl.lit(dataset),
                params_hash=pl.lit(ph),
                seed=pl.lit(seed),
                model=pl.lit(model),
                **{"class": pl.lit(label)},
            )  # fmt: skip
        )
    return pl.concat(parts) if parts else pl.DataFrame()


def listenable(con: duckdb.DuckDBPyConnection) -> list[Audio]:
    """Every stored composite as WAV bytes, captioned with its model, class and members."""
    rows = con.execute(
        """
        SELECT m.task, k.dataset, k.params_hash, k.seed, k.model, t.labels[k.class + 1],
               k.audio, k.n_composed, k.n_candidates, k.probs[k.class + 1]
        FROM composites AS k JOIN models AS m USING (model) JOIN tasks AS t ON t.task = m.task
        WHERE k.audio IS NOT NULL ORDER BY ALL
        """
    ).fetchall()
    out = []
    for task, dataset, ph, seed, model, label, audio, k, n, p in rows:
        x, rate = decode_flac(audio)
        out.append(
            Audio(
                slug("composite", task, dataset, model, label, ph, str(seed)),
                f"{model}'s {label} composite ({k} of {n} sufficient signals; {model} says "
                f"{label} with p = {p:.2f})",
                wav_bytes(x, rate),
                f"{task} / {dataset}",
            )
        )
    return out


def psd_chart(frame: pl.DataFrame) -> alt.TopLevelMixin:
    """Figure 3: PSD in dB against frequency, a panel per model, a line per class."""
    return (
        alt.Chart(frame)
        .mark_line(strokeWidth=1)
        .encode(
            x=alt.X("freq_hz:Q", title="frequency (Hz)"),
            y=alt.Y("psd_db:Q", title="PSD (dB/Hz)"),
            color=alt.Color("class:N"),
            tooltip=["model", "class", "freq_hz", "psd_db"],
        )
        .properties(width=260, height=150)
        .facet(facet=alt.Facet("model:N", title=None), columns=3)
    )


def run(con: duckdb.DuckDBPyConnection) -> Section:
    """Table 4 per (task, dataset, parameter set), the composites' PSDs, and players."""
    section = Section("composition", TITLE, INTRO)
    if not has_relations(con, "compositionality") or count(con, "composites") == 0:
        section.missing = (
            "No composites are stored yet: run `sigwh compose --model M` for each model "
            "(after `sigwh ingest --model M`)."
        )
        return section
    frame = query(con, "SELECT * FROM compositionality ORDER BY ALL")
    section.tables.append(
        Table("compositionality", "Degree of compositionality per model and class.", frame)
    )
    psd = psd_frame(con)
    labels_of = dict(con.execute("SELECT task, labels FROM tasks").fetchall())
    for task, dataset, ph, label, rows in groups(frame):
        section.tables.append(
            Table(
                slug("composition_degree", task, dataset, ph),
                "Degree of compositionality |κ| / candidates (the paper's table 4).",
                degree_table(rows, labels_of[task]),
                group=label,
            )
        )
        if psd.is_empty():
            continue
        part = psd.filter(
            (pl.col("task") == task)
            & (pl.col("dataset") == dataset)
            & (pl.col("params_hash") == ph)
        )
        if part.is_empty():
            continue
        section.charts.append(
            Chart(
                slug("composite_psd", task, dataset, ph),
                "Welch PSD of each class composite, per model (the paper's figure 3).",
                psd_chart(part),
                group=label,
            )
        )
    for model, label, dataset, reason in con.execute(
        "SELECT k.model, t.labels[k.class + 1], k.dataset, k.reason FROM composites AS k"
        " JOIN models AS m USING (model) JOIN tasks AS t ON t.task = m.task"
        " WHERE k.n_composed = 0 ORDER BY ALL"
    ).fetchall():
        section.notes.append(f"{model} has no {label} composite on {dataset}: {reason}.")
    section.audio = listenable(con)
    return section
