"""A model's rendering noise floor: how far its answer moves when a signal is rebuilt in
ways that should not matter.

A stored mask's verdict must hold however the masked signal is rebuilt (the renderings
of freqrex.renderings: float32 or float64 transforms, a 16-bit WAV round trip). Most
models move by 1e-4 at most between them; a model that reads 16-bit integers, or one
that listens to the noise floor of a recording, can move by tenths on the faint, sparse
signals that explanations keep. Searching such a model with a margin far below that
move finds masks whose verdict the rendering decides: the final verification then
rejects them and the clip is searched again, at several times the cost.

So before a model explains anything, the ingest job measures its floor once and the
search starts from it (freqrex.explain's `margin`). Measured on the first `N_CLIPS`
clips of the model's task (clip_id order, one label after another, so every label
counts): for each clip the signals made of its k strongest rfft bins alone (k in
`KEPT_BINS`) and the whole clip, each rendered four ways: the float32 transform, the
float64 transform cast to float32 (the reference), the 16-bit WAV round trip, and that
round trip with one least significant bit added or subtracted per sample (seeded). A
signal's move is the largest change of any class probability from the reference.

Stored in `model_noise_floors` (one row per model and method version): the largest
move, the median, the share of signals whose top-1 class differs between renderings,
and the floor itself, the `QUANTILE` quantile of the moves. The quantile rather than
the largest: one signal in a model's sample can move by almost the whole probability
(a single faint tone that 16-bit rounding nearly erases: 0.97 on one shipped spoof
model) and a margin that wide would leave the model no explanation at all, while the
final verification in every rendering still guards each stored mask on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from sigwarehouse.freqrex.renderings import dithered, float64_signals, pcm16
from sigwarehouse.freqrex.spectral import FFTSpace

if TYPE_CHECKING:
    import duckdb

    from sigwarehouse.models.base import AudioClassifier

METHOD = 1  # how the floor is measured; a change of method stores new rows
KEPT_BINS = (1, 4, 16, 64)  # the strongest bins kept alone; the whole clip is measured too
N_CLIPS = 4
QUANTILE = 0.9
DITHER_SEED = 0
QUERIES_PER_CLIP = 4 * (len(KEPT_BINS) + 1)  # four renderings of each signal
FLOOR_COLUMNS = (
    "model", "method", "clip_ids", "n_signals", "max_move", "median_move", "top1_differs",
    "noise_floor", "run_id",
)  # fmt: skip


def rendered_signals(wave: torch.Tensor, sample_rate: int) -> dict[str, np.ndarray]:
    """(len(KEPT_BINS) + 1, samples) float32 per rendering: the clip's k strongest rfft
    bins alone for each k, then the whole clip."""
    wave = wave.detach().float().cpu()
    space = FFTSpace(wave.shape[0])
    order = torch.argsort(torch.fft.rfft(wave.double()).abs(), descending=True)
    masks = torch.zeros((len(KEPT_BINS) + 1, space.n_vars), dtype=torch.bool)
    for row, k in enumerate(KEPT_BINS):
        masks[row, order[:k]] = True
    masks[-1] = True
    waves = wave[None].expand(len(masks), -1)
    single = space.inverse(space.forward(waves) * masks).numpy()
    exact = float64_signals(space, waves, masks).numpy()
    written = pcm16(exact, sample_rate)
    lsb = pcm16(dithered(written, DITHER_SEED), sample_rate)
    return {"float32": single, "float64": exact, "pcm16": written, "pcm16+lsb": lsb}


def signal_moves(clf: AudioClassifier, waves: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(largest probability move per signal, whether its top-1 differs between renderings)
    over every clip's signals. A non-finite answer gives a NaN move (no evidence)."""
    rate = getattr(clf, "sample_rate", None) or 16000
    moves, differs = [], []
    with torch.inference_mode():
        for wave in waves:
            rendered = rendered_signals(wave, rate)
            probs = {
                name: clf(torch.from_numpy(x).to(clf.device)).float().cpu().numpy()
                for name, x in rendered.items()
            }
            ref = probs["float64"]
            moves.append(np.max([np.abs(p - ref).max(axis=1) for p in probs.values()], axis=0))
            tops = np.stack([p.argmax(axis=1) for p in probs.values()])
            differs.append((tops != tops[0]).any(axis=0))
    return np.concatenate(moves), np.concatenate(differs)


def summary(moves: np.ndarray, differs: np.ndarray) -> dict:
    """The stored figures of a model's moves (NaN moves left out; all NaN: a floor of 0)."""
    finite = moves[np.isfinite(moves)]
    if finite.size == 0:
        return dict(n_signals=0, max_move=0.0, median_move=0.0, top1_differs=0.0, noise_floor=0.0)
    return dict(
        n_signals=int(finite.size),
        max_move=float(finite.max()),
        median_move=float(np.median(finite)),
        top1_differs=float(np.mean(differs[np.isfinite(moves)])),
        # method="higher": a move some signal had, never an interpolation below it
        noise_floor=float(np.quantile(finite, QUANTILE, method="higher")),
    )


def measuring_clips(con: duckdb.DuckDBPyConnection, task: str) -> list[int]:
    """The first N_CLIPS clips of the task: in clip_id order, one label after another."""
    rows = con.execute(
        """
        SELECT clip_id FROM (
            SELECT clip_id, label,
                   row_number() OVER (PARTITION BY label ORDER BY clip_id) AS nth
            FROM clips WHERE dataset IN (SELECT dataset FROM datasets WHERE task = ?))
        ORDER BY nth, clip_id LIMIT ?
        """,
        [task, N_CLIPS],
    ).fetchall()
    return [c for (c,) in rows]


def stored_floor(con: duckdb.DuckDBPyConnection, model: str) -> float | None:
    """The model's stored floor (this method), or None when it has none yet."""
    row = con.execute(
        "SELECT noise_floor FROM model_noise_floors WHERE model = ? AND method = ?",
        [model, METHOD],
    ).fetchone()
    return None if row is None else float(row[0])


def floor_rows(
    clf: AudioClassifier, model: str, clip_ids: list[int], waves: list[torch.Tensor], run_id: str
) -> list[tuple]:
    """The `model_noise_floors` row of `clf` measured on these clips (FLOOR_COLUMNS order)."""
    row = dict(model=model, method=METHOD, clip_ids=list(clip_ids), run_id=run_id)
    row |= summary(*signal_moves(clf, waves))
    return [tuple(row[column] for column in FLOOR_COLUMNS)]
