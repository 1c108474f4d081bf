"""Spectral entropy of sufficient and complete signals, real vs fake (section 5.2, figure 4).

The spectral entropy of a signal s is the Shannon entropy in bits of its normalised power
spectrum: P = |rfft(s)|², p = P / ΣP, H = −Σ p log2 p (bins with p = 0 add nothing). For
a signal irfft(m · S) of the paper's space, rfft(s) = m · S, so H is computed from the
clip's spectrum and the stored mask without an inverse FFT; an STFT-space signal is
rebuilt first. A silent signal (a sufficient mask that keeps no bin) has no spectral
entropy and is counted apart.

Signals are grouped by the class their source model gave the clip. For each two-class
task, source model and kind, a two-sided Mann–Whitney U test (`scipy.stats.mannwhitneyu`)
compares the two classes; the effect size is the rank-biserial correlation
r = 2U / (n1·n2) − 1 for the task's first class (positive: the first class, e.g. real,
tends to have the higher entropy). The originals are listed too, by the same grouping,
as a baseline.
"""

from __future__ import annotations

import json

import altair as alt
import duckdb
import numpy as np
import polars as pl
from scipy import stats

from sigwarehouse.analyses.common import (
    chart_sample,
    count,
    groups,
    has_relations,
    slug,
    unpack_mask,
)
from sigwarehouse.analyses.inference import MIN_CLIPS, illustrative, not_tested, untested
from sigwarehouse.audio import ClipLoadError, ClipSource, clip_sources, load_source
from sigwarehouse.report.sections import Chart, Section, Table
from sigwarehouse.signals import masked_signal

TITLE = "Spectral entropy, real vs fake"
LEVEL = 0.05  # the test's significance level
INTRO = (
    "Spectral entropy (bits) of each sufficient and complete signal: the Shannon entropy "
    "of its normalised power spectrum |rfft|². Signals are grouped by the class their "
    "source model gave the clip; for each two-class task and model, a two-sided "
    "Mann–Whitney U test compares the classes, with the rank-biserial correlation "
    "r = 2U/(n1·n2) − 1 as effect size (positive: the first class has higher entropy). "
    "Each signal is one clip's (n1, n2 count clips); a model and kind with fewer than "
    f"{MIN_CLIPS['Mann–Whitney']} clips in either class is not tested. "
    "Original clips are included as a baseline (kind `original`)."
)


def spectral_entropy_bits(power: np.ndarray) -> float:
    """Shannon entropy (bits) of a power spectrum normalised to sum 1; NaN when it is all 0."""
    p = np.asarray(power, dtype=np.float64)
    total = p.sum()
    if not total > 0:
        return float("nan")
    p = p[p > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: a single bin gives 0.0, not -0.0


_EXPLANATIONS_SQL = """
SELECT m.task, c.dataset, e.params_hash, e.model, e.clip_id,
       t.labels[e.orig_class + 1], e.n_bins, e.sufficient_mask, e.complete_mask, p.params
FROM explanations AS e
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = e.model
JOIN tasks AS t ON t.task = m.task
LEFT JOIN freqrex_params AS p USING (params_hash)
WHERE len(t.labels) = 2
ORDER BY e.clip_id, e.model
"""
CHUNK = 2048  # explanations read at a time: their masks, and their clips' audio, in memory


def signal_entropies(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per (explanation, kind): task, dataset, params_hash, model, clip_id, class,
    kind (original, sufficient, complete), bits (NaN for a silent signal). Clips whose
    audio cannot be loaded (file moved, no blob) are left out.

    The explanations stream in clip order, CHUNK at a time, and each clip's audio is
    loaded once, when its first explanation comes: memory holds one chunk, whatever the
    number of clips.
    """
    reader = con.cursor()  # its own connection: streams while `con` reads the clips
    try:
        reader.execute(_EXPLANATIONS_SQL)
        out: list[dict] = []
        clip, audio = None, None
        while rows := reader.fetchmany(CHUNK):
            sources = {s.clip_id: s for s in clip_sources(con, sorted({r[4] for r in rows}))}
            for row in rows:
                if row[4] != clip:  # rows come in clip order: a new clip
                    clip, audio = row[4], _load(sources[row[4]])
                if audio is not None:
                    out += _entropies(row, *audio)
    finally:
        reader.close()
    return pl.DataFrame(out) if out else pl.DataFrame()


def _load(source: ClipSource) -> tuple[np.ndarray, np.ndarray] | None:
    """The clip's samples and |rfft|², or None when its audio cannot be loaded."""
    try:
        samples = load_source(source)
    except ClipLoadError:
        return None
    return samples, np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2


def _entropies(row: tuple, samples: np.ndarray, power: np.ndarray) -> list[dict]:
    """The original's, the sufficient and the complete signal's rows of one explanation."""
    task, dataset, ph, model, clip, label, n_bins, suff, comp, params = row
    params = json.loads(params) if params else {}
    base = {"task": task, "dataset": dataset, "params_hash": ph, "model": model,
            "clip_id": clip, "class": label}  # fmt: skip
    out = [{**base, "kind": "original", "bits": spectral_entropy_bits(power)}]
    for kind, blob in (("sufficient", suff), ("complete", comp)):
        if blob is None:
            continue
        mask = unpack_mask(blob, n_bins)
        if params.get("space", "fft") == "fft":
            bits = spectral_entropy_bits(power * mask)
        else:
            signal = masked_signal(samples, mask, params).astype(np.float64)
            bits = spectral_entropy_bits(np.abs(np.fft.rfft(signal)) ** 2)
        out.append({**base, "kind": kind, "bits": bits})
    return out


def mann_whitney(first: list[float], second: list[float]) -> dict:
    """n1, n2 (clips: one signal per clip), medians, U (for `first`), two-sided p, the
    rank-biserial r, reject and verdict.

    U, p, r and reject are None, and `verdict` says why, unless both groups have at least
    MIN_CLIPS["Mann–Whitney"] clips (inference.not_tested)."""
    n1, n2 = len(first), len(second)
    row = {
        "n1": n1,
        "n2": n2,
        "median1": float(np.median(first)) if first else None,
        "median2": float(np.median(second)) if second else None,
        "U": None,
        "p": None,
        "r_rank_biserial": None,
        "reject": None,
        "verdict": not_tested("Mann–Whitney", min(n1, n2), " in the smaller class"),
    }
    if row["verdict"] is None:
        result = stats.mannwhitneyu(first, second, alternative="two-sided")
        row["U"], row["p"] = float(result.statistic), float(result.pvalue)
        row["r_rank_biserial"] = 2 * row["U"] / (n1 * n2) - 1
        row["reject"] = row["p"] < LEVEL
        row["verdict"] = "differ" if row["reject"] else "no difference shown"
        row["verdict"] += f" (p {'<' if row['reject'] else '≥'} {LEVEL})"
    return row


def tests(frame: pl.DataFrame, labels_of: dict[str, list[str]]) -> pl.DataFrame:
    """One Mann–Whitney test per (task, dataset, params_hash, model, kind)."""
    audible = frame.filter(pl.col("bits").is_not_nan())
    rows = []
    keys = ["task", "dataset", "params_hash", "model", "kind"]
    for key, g in sorted(audible.group_by(keys, maintain_order=True), key=lambda x: x[0]):
        first, second = labels_of[key[0]]
        a = g.filter(pl.col("class") == first)["bits"].to_list()
        b = g.filter(pl.col("class") == second)["bits"].to_list()
        rows.append(
            {**dict(zip(keys, key, strict=True)), "class1": first, "class2": second,
             **mann_whitney(a, b)}
        )  # fmt: skip
    return pl.DataFrame(rows)


# The report section below is presentation, outside the mutation scope (`make mutation`).
# pragma: no mutate block
def run(con: duckdb.DuckDBPyConnection) -> Section:
    """The entropy of every signal (CSV), the tests per group, and box plots per model."""
    section = Section("spectral_entropy", TITLE, INTRO)
    if not has_relations(con, "explanations") or count(con, "explanations") == 0:
        section.missing = "No explanations are stored yet: run `sigwh ingest --model M`."
        return section
    frame = signal_entropies(con)
    if frame.is_empty():
        section.missing = (
            "No explanation of a two-class task (e.g. real/fake) with loadable audio is "
            "stored: ingest a spoof model (`sigwh ingest --model sp1`)."
        )
        return section
    labels_of = {t: list(ls) for t, ls in con.execute("SELECT task, labels FROM tasks").fetchall()}
    silent = frame.filter(pl.col("bits").is_nan())
    if silent.height:
        per = silent.group_by("model", "kind").len().sort("model", "kind").iter_rows()
        section.notes.append(
            "Silent signals (a sufficient mask that keeps no bin) have no spectral entropy "
            "and are left out: " + ", ".join(f"{m} {k}: {n}" for m, k, n in per) + "."
        )
    result = tests(frame, labels_of)
    reasons = []
    for _t, _d, _p, label, rows in groups(result):
        smaller = rows.select(pl.min_horizontal("n1", "n2"))[:, 0]
        below = smaller.filter(smaller < MIN_CLIPS["Mann–Whitney"]).to_list()
        if below:
            unit = " in the smaller class"
            reasons.append(untested(label, "Mann–Whitney", below, rows.height, unit))
    if reasons:
        section.below_minimum.append(illustrative(TITLE, reasons))
    section.tables.append(
        Table("spectral_entropy_signals", "Spectral entropy of every signal (CSV only).",
              frame, in_page=False)
    )  # fmt: skip
    for task, dataset, ph, label, g in groups(result):
        section.tables.append(
            Table(
                slug("spectral_entropy_tests", task, dataset, ph),
                "Mann–Whitney U test of spectral entropy between the two classes.",
                g.drop("task", "dataset", "params_hash"),
                group=label,
            )
        )
        points = frame.filter(
            (pl.col("task") == task)
            & (pl.col("dataset") == dataset)
            & (pl.col("params_hash") == ph)
            & pl.col("bits").is_not_nan()
        )
        # points and a median tick (Vega-Lite's boxplot mark draws faceted data wrongly);
        # the ticks are the medians of every signal, also where the points are a sample
        drawn, sampled = chart_sample(points, "signals")
        facets = ["kind", "model", "class"]
        medians = points.group_by(facets).agg(pl.col("bits").median()).sort(facets)
        layers = pl.concat(
            [drawn.with_columns(mark=pl.lit("point")),
             medians.with_columns(mark=pl.lit("median"))], how="diagonal_relaxed"
        )  # fmt: skip
        base = alt.Chart(layers).encode(
            x=alt.X("class:N", title=None, sort=labels_of[task]),
            color=alt.Color("class:N", sort=labels_of[task]),
        )
        chart = (
            alt.layer(
                base.mark_point(opacity=0.6)
                .encode(
                    y=alt.Y("bits:Q", title="spectral entropy (bits)"),
                    tooltip=["model", "clip_id", "class", "kind", "bits"],
                )
                .transform_filter(alt.datum.mark == "point"),
                base.mark_tick(thickness=2, size=24)
                .encode(y="bits:Q")
                .transform_filter(alt.datum.mark == "median"),
            )
            .properties(width=70, height=120)
            .facet(
                row=alt.Row("kind:N", title=None, sort=["original", "sufficient", "complete"]),
                column=alt.Column("model:N", title=None),
            )
        )
        section.charts.append(
            Chart(
                slug("spectral_entropy", task, dataset, ph),
                "Spectral entropy by the class each model gave, one point per signal, the "
                "tick at the median (the paper's figure 4)." + sampled,
                chart,
                group=label,
            )
        )
    return section
