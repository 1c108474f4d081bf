"""The Python API for notebooks: a warehouse opened read-only, its tables as Polars
DataFrames, one clip's explanation with NumPy masks and Hz bands, and signals that play.

    import sigwarehouse
    wh = sigwarehouse.open("warehouse.duckdb")
    wh.alpha(task="speech")                     # α matrix: a row per source model
    e = wh.explanation("webrtc", clip_id=1)
    e.sufficient_mask                           # bool array, one entry per rfft bin
    e.bands("sufficient")                       # lo_hz, hi_hz, bins
    e.signal("sufficient")                      # plays in a notebook; np.asarray() it

The warehouse is opened for each call and closed after it, so a notebook left open
never keeps `sigwh ingest` from writing; `wh.connect()` gives a DuckDB connection (with
sigwarehouse's views) for DuckDB relations. Everything here is read-only.

Masks: entry k of a mask is rfft bin k of the clip, at k * sample_rate / n_samples Hz
(`Explanation.frequencies`). The warehouse stores a mask packed eight bins a byte in
NumPy's big bit order, so `np.unpackbits(blob)[:n_bins]` is the same array.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from sigwarehouse import audio, store
from sigwarehouse.errors import SigwhError
from sigwarehouse.signals import masked_signal

SIGNALS = ("original", "sufficient", "complete", "inverse")
MASK_KINDS = ("sufficient", "complete")


def open(path: str | Path = store.DEFAULT_WAREHOUSE) -> Warehouse:  # noqa: A001 (as duckdb.connect)
    """The warehouse at `path`, read-only. Refuses a missing file, one that is not a
    warehouse, and one newer than this sigwarehouse (WarehouseError, naming the file)."""
    return Warehouse(Path(path))


@dataclass(frozen=True)
class Signal:
    """A mono signal and its sample rate. `np.asarray(signal)` gives the samples; in a
    notebook it shows as an audio player (as IPython.display.Audio)."""

    samples: np.ndarray
    rate: int
    name: str = ""

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.samples if dtype is None else self.samples.astype(dtype)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def wav(self) -> bytes:
        """The signal as 16-bit PCM WAV bytes (values clipped to [-1, 1])."""
        return audio.wav_bytes(self.samples, self.rate)

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.wav()).decode("ascii")
        label = html.escape(f"{self.name} ({self.duration_s:.2f} s at {self.rate} Hz)")
        return (
            f'<figure style="margin:0"><figcaption>{label}</figcaption>'
            f'<audio controls src="data:audio/wav;base64,{data}"></audio></figure>'
        )

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self.samples)} samples at {self.rate} Hz)"


@dataclass(frozen=True)
class Explanation:
    """One model's explanation of one clip: its class, its masks as NumPy bool arrays
    (entry k: rfft bin k, at `frequencies[k]` Hz; None where there is no mask) and the
    signals they define."""

    model: str
    clip_id: int
    task: str
    label: str  # the clip's label in the catalog
    predicted: str  # the model's class on the clip
    confidence: float
    params_hash: str
    params: dict
    sample_rate: int
    samples: np.ndarray = field(repr=False)
    sufficient_mask: np.ndarray | None = field(repr=False)
    complete_mask: np.ndarray | None = field(repr=False)
    _warehouse: Warehouse = field(repr=False)
    _packed: dict = field(repr=False)

    @property
    def n_bins(self) -> int:
        return len(self.samples) // 2 + 1

    @property
    def frequencies(self) -> np.ndarray:
        """The frequency in Hz of each rfft bin (each entry of a mask)."""
        return np.fft.rfftfreq(len(self.samples), d=1 / self.sample_rate)

    def mask(self, kind: str) -> np.ndarray | None:
        """The sufficient or complete mask (None where the search found none)."""
        if kind not in MASK_KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(MASK_KINDS)}")
        return self.sufficient_mask if kind == "sufficient" else self.complete_mask

    def bands(self, kind: str = "sufficient") -> pl.DataFrame:
        """The mask's kept bands in Hz, one row per band (band, first_bin, bins, lo_hz,
        hi_hz), as the SQL macro mask_bands gives them; no rows where there is no mask."""
        self.mask(kind)  # checks kind
        return self._warehouse.sql(
            "SELECT * FROM mask_bands(?, ?, ?, ?)",
            [self._packed[kind], self.n_bins, len(self.samples), self.sample_rate],
        )

    def signal(self, kind: str = "sufficient") -> Signal:
        """The original clip, or the sufficient, complete or inverse signal (the clip
        without the complete mask's bins), rebuilt from the stored mask as the jobs
        build it. Refuses a kind whose mask the search did not find."""
        name = f"{kind} signal of clip {self.clip_id} by {self.model}"
        if kind == "original":
            return Signal(self.samples, self.sample_rate, f"clip {self.clip_id}")
        if kind not in SIGNALS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(SIGNALS)}")
        mask = self.mask("complete" if kind == "inverse" else kind)
        if mask is None:
            raise SigwhError(f"{self.model} has no {kind} mask for clip {self.clip_id}")
        if kind == "inverse":
            mask = ~mask
        return Signal(masked_signal(self.samples, mask, self.params), self.sample_rate, name)

    def __repr__(self) -> str:
        def kept(mask: np.ndarray | None) -> str:
            return "none" if mask is None else f"{int(mask.sum())} of {mask.size} bins"

        return (
            f"Explanation(clip {self.clip_id} ({self.label}) by {self.model}: "
            f"{self.predicted} at p={self.confidence:.3f}; sufficient {kept(self.sufficient_mask)}"
            f", complete {kept(self.complete_mask)}; parameters {self.params_hash})"
        )


_EXPLANATION = """
SELECT e.params_hash, p.params, t.task, t.labels, t.sample_rate, c.label, e.orig_class,
       e.orig_conf, e.n_bins, e.sufficient_mask, e.complete_mask
FROM explanations AS e
JOIN models AS m ON m.model = e.model
JOIN tasks AS t ON t.task = m.task
JOIN clips AS c ON c.clip_id = e.clip_id
LEFT JOIN freqrex_params AS p ON p.params_hash = e.params_hash
WHERE e.model = ? AND e.clip_id = ?
  AND e.params_hash = coalesce(?, (SELECT s.params_hash FROM parameter_sets AS s
                                   WHERE s.task = m.task AND s.shown))
"""


class Warehouse:
    """A sigwarehouse warehouse file, read-only (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.connect():  # refuses what is not a readable warehouse, now
            pass

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only DuckDB connection with sigwarehouse's views and macros, closed when
        the block ends (while it is open, no other process can write the file)."""
        with store.opened(self.path, read_only=True) as con:
            yield con

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        """The result of a query, as a Polars DataFrame."""
        with self.connect() as con:
            return con.sql(query, params=params or None).pl()

    def summary(self, params_hash: str | None = None) -> pl.DataFrame:
        """transferability_summary (each task's shown parameter set), or
        transferability_summary_for(params_hash)."""
        if params_hash is None:
            return self.sql("SELECT * FROM transferability_summary ORDER BY ALL")
        return self.sql("SELECT * FROM transferability_summary_for(?) ORDER BY ALL", [params_hash])

    def alpha(
        self,
        task: str | None = None,
        kind: str = "sufficient",
        dataset: str | None = None,
        params_hash: str | None = None,
        nonempty: bool = False,
    ) -> pl.DataFrame:
        """The α matrix of one task and dataset: a row per source model, a column per
        target model (the share of the source's `kind` signals the target gives the
        source's class), and `avg`, the mean over the other targets (the paper's tables).
        nonempty: α over the signals whose mask keeps at least one bin. `task` and
        `dataset` may be left out where the warehouse has only one."""
        source = (
            "alpha_transferability"
            if params_hash is None
            else f"alpha_transferability_for({_quoted(params_hash)})"
        )
        value = "alpha_nonempty" if nonempty else "alpha"
        return self._matrix(source, value, task, kind, dataset)

    def beta(
        self,
        eps: float,
        task: str | None = None,
        kind: str = "sufficient",
        dataset: str | None = None,
        params_hash: str | None = None,
    ) -> pl.DataFrame:
        """The β(ε) matrix, laid out as alpha()'s (the paper's definition 4)."""
        eps = float(eps)
        source = (
            f"beta_transferability({eps})"
            if params_hash is None
            else f"beta_transferability_for({eps}, {_quoted(params_hash)})"
        )
        return self._matrix(source, "beta", task, kind, dataset)

    def _matrix(
        self, source: str, value: str, task: str | None, kind: str, dataset: str | None
    ) -> pl.DataFrame:
        cells = self.sql(f"SELECT * FROM {source} WHERE kind = ?", [kind])
        task = _only(cells, "task", task)
        cells = cells.filter(pl.col("task") == task)
        dataset = _only(cells, "dataset", dataset)
        cells = cells.filter(pl.col("dataset") == dataset)
        models = sorted(set(cells["source_model"]) | set(cells["target_model"]))
        wide = cells.pivot(on="target_model", index="source_model", values=value)
        wide = wide.select(["source_model", *[m for m in models if m in wide.columns]])
        others = [pl.when(pl.col("source_model") != m).then(pl.col(m)) for m in wide.columns[1:]]
        return wide.with_columns(avg=pl.mean_horizontal(others)).sort("source_model")

    def explanation(self, model: str, clip_id: int, params_hash: str | None = None) -> Explanation:
        """`model`'s explanation of clip `clip_id` (of the task's shown parameter set, or
        `params_hash`), with the clip's audio. Refuses one that is not stored."""
        with self.connect() as con:
            rows = con.execute(_EXPLANATION, [model, int(clip_id), params_hash]).fetchall()
            if not rows:
                raise SigwhError(
                    f"no explanation of clip {clip_id} by {model} "
                    f"{'in the shown parameter set' if params_hash is None else params_hash}: "
                    "see `SELECT model, clip_id, params_hash FROM explanations`"
                )
            samples = audio.load_clip(con, int(clip_id))
        (ph, params, task, labels, rate, label, cls, conf, n_bins, suff, comp) = rows[0]
        if n_bins != len(samples) // 2 + 1:
            raise SigwhError(
                f"clip {clip_id}: {model}'s masks have {n_bins} variables, not the "
                f"{len(samples) // 2 + 1} rfft bins of its {len(samples)} samples "
                "(an STFT-space explanation: its masks are not over frequencies alone)"
            )
        return Explanation(
            model=model,
            clip_id=int(clip_id),
            task=task,
            label=label,
            predicted=labels[cls],
            confidence=float(conf),
            params_hash=ph,
            params=json.loads(params) if params else {},
            sample_rate=int(rate),
            samples=samples,
            sufficient_mask=_unpacked(suff, n_bins),
            complete_mask=_unpacked(comp, n_bins),
            _warehouse=self,
            _packed={"sufficient": suff, "complete": comp},
        )


def _unpacked(blob: bytes | None, n_bins: int) -> np.ndarray | None:
    """A stored mask as bools (big bit order: the first bin is the first byte's top bit)."""
    if blob is None:
        return None
    return np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=n_bins).astype(bool)


def _only(frame: pl.DataFrame, column: str, chosen: str | None) -> str:
    """`chosen`, or the one value of `column`; refuses a choice not there, or none
    where there are several."""
    values = sorted(set(frame[column]))
    listed = ", ".join(values) or "none"
    if chosen is None and len(values) == 1:
        return values[0]
    if chosen is None:
        raise SigwhError(f"choose a {column} with {column}=…: this warehouse has {listed}")
    if chosen not in values:
        raise SigwhError(f"{column} {chosen!r} has no cells here; this warehouse has {listed}")
    return chosen


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
