"""Frequencies in SQL: the macro mask_bands (a packed mask's kept bands in Hz), the view
kept_bands (every stored mask's) and the view band_statistics (per model), each checked
against the bands computed here from the unpacked bits with plain NumPy and Python.

Cases a wrong bit order, an off-by-one at either end, the padding bits of the last byte
or a band cut at a byte boundary would break: random masks of odd lengths, masks keeping
bin 0 or the last bin, every bin, none, and a run across bytes.
"""

from __future__ import annotations

import statistics

import duckdb
import numpy as np
import pytest
from sharing import copy_of

from sigwarehouse import store


def bands_by_hand(blob: bytes, n_bins: int, n_samples: int, rate: int) -> list[tuple]:
    """(band, first_bin, bins, lo_hz, hi_hz) of the kept runs, band by band in Python."""
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[:n_bins].tolist()
    out, k = [], 0
    while k < n_bins:
        if bits[k]:
            start = k
            while k < n_bins and bits[k]:
                k += 1
            hz = rate / n_samples
            out.append((len(out) + 1, start, k - start, start * hz, (k - 1) * hz))
        else:
            k += 1
    return out


def _macro_rows(con: duckdb.DuckDBPyConnection, blob, n_bins, n_samples, rate) -> list[tuple]:
    rows = con.execute(
        "SELECT band, first_bin, bins, lo_hz, hi_hz FROM mask_bands(?, ?, ?, ?)",
        [blob, n_bins, n_samples, rate],
    ).fetchall()
    return [(b, f, n, pytest.approx(lo), pytest.approx(hi)) for b, f, n, lo, hi in rows]


@pytest.fixture
def con(small_filled):
    with store.opened(small_filled[0], read_only=True) as con:
        yield con


def test_the_macro_gives_the_bands_of_the_unpacked_bits(con) -> None:
    rng = np.random.default_rng(3)
    masks = []
    for n_bins in (1, 7, 8, 9, 17, 64, 1001):
        for density in (0.05, 0.5, 0.95):
            masks.append(rng.random(n_bins) < density)
        masks += [np.ones(n_bins, bool), np.zeros(n_bins, bool)]
        ends = np.zeros(n_bins, bool)
        ends[[0, -1]] = True  # bin 0 and the last bin, which the padding bits follow
        masks.append(ends)
    across = np.zeros(40, bool)
    across[6:19] = True  # one run over three bytes
    masks.append(across)
    for mask in masks:
        n_bins = len(mask)
        blob = np.packbits(mask).tobytes()
        n_samples = 2 * (n_bins - 1) + (n_bins % 2)  # odd and even lengths both
        expected = bands_by_hand(blob, n_bins, max(n_samples, 1), 16000)
        assert _macro_rows(con, blob, n_bins, max(n_samples, 1), 16000) == expected, mask
        assert sum(b[2] for b in expected) == int(mask.sum())
    assert con.execute("SELECT count(*) FROM mask_bands(NULL, 8, 14, 16000)").fetchone() == (0,)


def test_kept_bands_are_every_stored_masks_bands(small_filled, con) -> None:
    _path, filled = small_filled
    rows = con.execute(
        "SELECT model, clip_id, kind, band, first_bin, bins, lo_hz, hi_hz, bin_hz FROM kept_bands"
    ).fetchall()
    got: dict[tuple, list] = {}
    for model, clip, kind, *band, bin_hz in rows:
        got.setdefault((model, clip, kind), []).append(tuple(band))
        assert bin_hz == 2.0  # 16 kHz over 8000 samples
    expected = {}
    for (model, clip), (suff, comp) in filled.masks.items():
        for kind, mask in (("sufficient", suff), ("complete", comp)):
            if mask is not None and mask.any():
                blob = np.packbits(mask).tobytes()
                expected[(model, clip, kind)] = bands_by_hand(blob, len(mask), 8000, 16000)
    assert {k: sorted(v) for k, v in got.items()} == expected


def _per_mask(filled, task_models: set[str], kind: str, native: dict[int, float]) -> list[dict]:
    """Each non-empty mask's figures, from its bits: bins, bands, median kept Hz, bins
    below 300 Hz, whether all lie below 20 Hz or above the clip's native band."""
    out = []
    for (model, clip), (suff, comp) in filled.masks.items():
        mask = suff if kind == "sufficient" else comp
        if model not in task_models or mask is None or not mask.any():
            continue
        hz = np.flatnonzero(mask) * 2.0
        out.append(
            {
                "model": model,
                "bins": len(hz),
                "bands": int(np.sum(np.diff(np.concatenate(([0], mask.astype(int)))) == 1)),
                "median_hz": float(hz[(len(hz) - 1) // 2]),
                "below_300": int(np.sum(hz < 300)),
                "below_20": bool(hz.max() < 20),
                "above": bool(hz.min() > native[clip]),
            }
        )
    return out


def test_band_statistics_per_model_match_the_masks(small_filled, tmp_path) -> None:
    path = copy_of(small_filled[0], tmp_path)
    filled = small_filled[1]
    # plant the two flags: m1's sufficient mask of clip 3 keeps only 4 and 10 Hz, and
    # clip 4 was recorded at 2 kHz (its native band ends at 1 kHz)
    low = np.zeros(4001, bool)
    low[[2, 5]] = True
    filled = type(filled)(filled.labels, masks=dict(filled.masks))
    filled.masks[("m1", 3)] = (low, filled.masks[("m1", 3)][1])
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE explanations SET sufficient_mask = ?, sufficient_size = 2"
        " WHERE model = 'm1' AND clip_id = 3",
        [np.packbits(low).tobytes()],
    )
    con.execute("UPDATE clips SET native_sample_rate = 2000 WHERE clip_id = 4")
    native = dict(con.execute("SELECT clip_id, native_sample_rate / 2 FROM clips").fetchall())
    con.close()
    with store.opened(path, read_only=True) as con:
        rows = con.execute(
            "SELECT task, model, kind, n_masks, median_bins, median_bands, n_few_bins,"
            " median_kept_hz, share_bins_below_300hz, n_below_20hz, n_above_native"
            " FROM band_statistics"
        ).fetchall()
    models_with_masks = {
        (model, kind)
        for kind in ("sufficient", "complete")
        for model in {m for m, _ in filled.masks}
        if _per_mask(filled, {model}, kind, native)
    }
    assert {(r[1], r[2]) for r in rows} == models_with_masks and len(rows) == len(models_with_masks)
    flags = {"below": 0, "above": 0}
    for _task, model, kind, n, m_bins, m_bands, few, m_hz, share, below, above in rows:
        masks = _per_mask(filled, {model}, kind, native)
        assert n == len(masks), (model, kind)
        assert m_bins == statistics.median(x["bins"] for x in masks)
        assert m_bands == statistics.median(x["bands"] for x in masks)
        assert few == sum(x["bins"] <= 3 for x in masks)
        assert m_hz == pytest.approx(statistics.median(x["median_hz"] for x in masks))
        share_hand = sum(x["below_300"] for x in masks) / sum(x["bins"] for x in masks)
        assert share == pytest.approx(share_hand)
        assert below == sum(x["below_20"] for x in masks)
        assert above == sum(x["above"] for x in masks)
        flags["below"] += below
        flags["above"] += above
    assert flags["below"] >= 1 and flags["above"] >= 1  # the planted cases are counted


def test_the_report_draws_each_examples_spectrum_under_its_bands(small_filled, tmp_path) -> None:
    """The spectra section: for each example clip, the drawn spectrum is the loudest bin
    of each slice of |rfft(clip)| in dB (computed here), the drawn bands are the stored
    masks' runs, and a mask planted below 20 Hz is flagged in its caption and the table."""
    from sigwarehouse.analyses import spectra  # the report's analyses: only this test

    path = copy_of(small_filled[0], tmp_path)
    filled = small_filled[1]
    low = np.zeros(4001, bool)
    low[[3, 4]] = True  # 6 and 8 Hz
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE explanations SET sufficient_mask = ?, sufficient_size = 2"
        " WHERE model = 'm1' AND clip_id = 1",
        [np.packbits(low).tobytes()],
    )
    con.close()
    with store.opened(path, read_only=True) as con:
        section = spectra.run(con)
    assert section.missing is None and section.charts
    flagged = section.tables[0].frame
    assert ("m1", 1, "sufficient", "all below 20 Hz") in flagged.select(
        "model", "clip_id", "kind", "flag"
    ).rows()
    seen = set()
    for chart in section.charts:
        model, clip = chart.name.removeprefix("spectrum_").rsplit("_", 1)
        clip = int(clip)
        seen.add((model, clip))
        layers = chart.chart.layer
        spectrum = layers[2].data
        db = 20 * np.log10(np.maximum(np.abs(np.fft.rfft(filled.audio[clip])) / 1, 1e-300))
        db -= db.max()
        expected = [s.max() for s in np.array_split(db, spectra.SPECTRUM_POINTS)]
        np.testing.assert_allclose(spectrum["db"].to_numpy(), np.maximum(expected, -120), atol=1e-3)
        bands = layers[0].data
        suff, comp = filled.masks[(model, clip)]
        if (model, clip) == ("m1", 1):
            suff = low
            assert "sufficient mask all below 20 Hz" in chart.caption
        for kind, mask in (("sufficient", suff), ("complete", comp)):
            rows = bands.filter(bands["kind"] == kind)
            runs = (
                bands_by_hand(np.packbits(mask).tobytes(), 4001, 8000, 16000)
                if (mask is not None)
                else []
            )
            assert rows["lo_hz"].to_list() == pytest.approx([r[3] for r in runs])
            assert rows["bins"].to_list() == [r[2] for r in runs]
    assert ("m1", 1) in seen and len(seen) == len(section.charts)
