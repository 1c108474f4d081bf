"""Where the evidence lies in frequency: for the clips the "Listen" section plays, the
clip's spectrum with the sufficient and complete masks' kept bands drawn over it, and
the masks whose kept bands all lie where nothing can be heard or recorded.

The bands come from the SQL view kept_bands (the macro mask_bands on every stored mask),
so the chart shows what a query gives. The spectrum is |rfft(clip)| in dB below the
clip's strongest bin, reduced for the page to the loudest bin of each of at most
SPECTRUM_POINTS equal slices (so a narrow peak stays visible).

Flags, over every mask of each task's shown parameter set: all kept bins below 20 Hz
(infrasound: no listener and no mel filter bank starting at 20 Hz hears it), or all
above the clip's native band (half the recording's sample rate: a resampled clip holds
only resampling residue there). Every model here takes the task's sample rate, whose
band ends at its Nyquist frequency, above every rfft bin: for a mask, the clip's native
band is the input band that can end lower.
"""

from __future__ import annotations

import altair as alt
import duckdb
import numpy as np
import polars as pl

from sigwarehouse.analyses import examples
from sigwarehouse.analyses.common import count, has_relations, query
from sigwarehouse.audio import ClipLoadError, load_clip
from sigwarehouse.report.sections import Chart, Section, Table

SPECTRUM_POINTS = 600  # points of a drawn spectrum
INFRASOUND_HZ = 20.0
TITLE = "Where the evidence lies: spectra with the kept bands"
INTRO = (
    "For the clips of the Listen section: the clip's spectrum (dB below its strongest "
    "bin, on a frequency axis that is linear to 100 Hz and logarithmic above) with the "
    "bands the model's sufficient mask keeps (orange) and its complete mask keeps (blue). "
    "The table lists every mask, of every explained clip, whose kept bins all lie below "
    f"{INFRASOUND_HZ:.0f} Hz or all above the clip's native band (half its recording's "
    "sample rate); the models take the task's sample rate, so no bin lies above their "
    "own input band."
)
COLOURS = {"sufficient": "#e6550d", "complete": "#3182bd"}

_FLAGS_SQL = f"""
SELECT k.task, k.model, k.clip_id, k.kind, sum(k.bins)::INTEGER AS bins,
       min(k.lo_hz) AS lo_hz, max(k.hi_hz) AS hi_hz, any_value(k.clip_native_hz) AS native_hz,
       CASE WHEN max(k.hi_hz) < {INFRASOUND_HZ} THEN 'all below {INFRASOUND_HZ:.0f} Hz'
            ELSE 'all above the clip''s native band' END AS flag
FROM kept_bands AS k
JOIN parameter_sets AS s ON s.task = k.task AND s.params_hash = k.params_hash AND s.shown
GROUP BY k.task, k.model, k.clip_id, k.kind, k.params_hash
HAVING max(k.hi_hz) < {INFRASOUND_HZ} OR min(k.lo_hz) > any_value(k.clip_native_hz)
ORDER BY k.task, k.model, k.clip_id, k.kind
"""


def run(con: duckdb.DuckDBPyConnection, per_model: int = examples.PER_MODEL) -> Section:
    """A chart per example clip and the table of flagged masks, or why there are none."""
    section = Section("spectra", TITLE, INTRO, short_title="Spectra")
    if not has_relations(con, "explanations") or count(con, "explanations") == 0:
        section.missing = "No explanations are stored yet: run `sigwh ingest --model M`."
        return section
    flags = query(con, _FLAGS_SQL)
    section.tables.append(
        Table(
            "flagged_masks",
            "Masks whose kept bins all lie below 20 Hz, or all above the clip's native band "
            f"({flags.height} of them; bins: kept bins, lo_hz and hi_hz: the lowest and "
            "highest kept frequency).",
            flags,
        )
    )
    for model, clip_id, params_hash, task in _examples(con, per_model):
        try:
            spectrum, bands = spectrum_and_bands(con, model, clip_id, params_hash)
        except ClipLoadError as exc:
            section.notes.append(f"{model}, clip {clip_id}: audio unavailable ({exc})")
            continue
        flagged = flags.filter((pl.col("model") == model) & (pl.col("clip_id") == clip_id))
        said = "; ".join(f"{k} mask {f}" for k, f in flagged.select("kind", "flag").rows())
        section.charts.append(
            Chart(
                f"spectrum_{model}_{clip_id}",
                f"{model}, clip {clip_id}: the clip's spectrum and the kept bands "
                f"({_kept(bands, 'sufficient')} sufficient, {_kept(bands, 'complete')} "
                f"complete){'; ' + said if said else ''}.",
                chart(spectrum, bands),
                group=task,
            )
        )
    return section


def _examples(con: duckdb.DuckDBPyConnection, per_model: int) -> list[tuple]:
    """(model, clip_id, params_hash, task) of the Listen section's clips, in its order."""
    rows = con.execute(examples._CHOICE_SQL, {"per_model": per_model}).fetchall()
    return [(row[0], row[1], row[2], row[15]) for row in rows]  # the Listen section's rule


def _kept(bands: pl.DataFrame, kind: str) -> str:
    rows = bands.filter(pl.col("kind") == kind)
    if rows.height == 0:
        return "no"
    bins = rows["bins"].sum()
    return f"{bins} bin{'s' * (bins != 1)} in {rows.height} band{'s' * (rows.height != 1)}"


def spectrum_and_bands(
    con: duckdb.DuckDBPyConnection, model: str, clip_id: int, params_hash: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The clip's reduced spectrum (hz, db) and the kept bands of the model's masks, as
    the SQL macro mask_bands gives them (kind, lo_hz, hi_hz, bins, hi_edge_hz: the band's
    last bin plus one bin's width, where its rectangle ends)."""
    samples = load_clip(con, clip_id)
    rate, n_bins, masks = con.execute(
        "SELECT t.sample_rate, e.n_bins, [e.sufficient_mask, e.complete_mask]"
        " FROM explanations e JOIN clips c USING (clip_id) JOIN datasets d USING (dataset)"
        " JOIN tasks t ON t.task = d.task"
        " WHERE e.model = ? AND e.clip_id = ? AND e.params_hash = ?",
        [model, clip_id, params_hash],
    ).fetchall()[0]
    magnitude = np.abs(np.fft.rfft(samples.astype(np.float64)))
    hz = np.fft.rfftfreq(len(samples), d=1 / rate)
    peak = magnitude.max() if magnitude.size and magnitude.max() > 0 else 1.0
    db = 20 * np.log10(np.maximum(magnitude / peak, 1e-6))  # floor: -120 dB
    slices = np.array_split(np.arange(len(db)), min(SPECTRUM_POINTS, len(db)))
    loudest = [s[np.argmax(db[s])] for s in slices]
    spectrum = pl.DataFrame({"hz": hz[loudest], "db": db[loudest]})
    # the macro on this explanation's two masks (kept_bands would unpack every mask first)
    parts = [
        query(
            con,
            "SELECT ? AS kind, lo_hz, hi_hz, bins, hi_hz + ? AS hi_edge_hz"
            " FROM mask_bands(?, ?, ?, ?) ORDER BY band",
            [kind, rate / len(samples), mask, n_bins, len(samples), rate],
        )
        # the complete bands first, so that the sufficient ones are drawn over them
        for kind, mask in zip(("complete", "sufficient"), masks[::-1], strict=True)
        if mask is not None and n_bins == len(samples) // 2 + 1  # rfft bins (not STFT cells)
    ]
    bands = pl.concat(parts) if parts else pl.DataFrame(
        schema={"kind": pl.String, "lo_hz": pl.Float64, "hi_hz": pl.Float64,
                "bins": pl.Int32, "hi_edge_hz": pl.Float64}
    )  # fmt: skip
    return spectrum, bands


def chart(spectrum: pl.DataFrame, bands: pl.DataFrame) -> alt.LayerChart:
    """The spectrum as a line with the bands as translucent rectangles over it."""
    ticks = [0, 20, 50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000, 24000]
    x = alt.X(
        "hz:Q",
        title="frequency (Hz)",
        scale=alt.Scale(type="symlog", constant=100, nice=False),
        axis=alt.Axis(values=[t for t in ticks if t <= spectrum["hz"].max()], labelFlush=False),
    )
    line = (
        alt.Chart(spectrum)
        .mark_line(color="#555", strokeWidth=0.8)
        .encode(x=x, y=alt.Y("db:Q", title="dB below the peak"))
    )
    kinds = list(COLOURS)
    colour = alt.Color(
        "kind:N",
        scale=alt.Scale(domain=kinds, range=[COLOURS[k] for k in kinds]),
        title="kept by the mask",
    )
    x_band = alt.X("lo_hz:Q", scale=alt.Scale(type="symlog", constant=100, nice=False))
    tooltip = ["kind", "lo_hz", "hi_hz", "bins"]
    rects = (
        alt.Chart(bands)
        .mark_rect(opacity=0.35)
        .encode(x=x_band, x2="hi_edge_hz:Q", color=colour, tooltip=tooltip)
    )
    # a band of one or two bins is narrower than a pixel: a line marks where each starts
    rules = (
        alt.Chart(bands).mark_rule(strokeWidth=1.5).encode(x=x_band, color=colour, tooltip=tooltip)
    )
    return alt.layer(rects, rules, line).properties(width=520, height=140)
