"""Probes: what a model says about signals that carry no evidence.

Where the all-zero signal already gets a clip's class, freqrex's sufficient mask keeps
no bin: the "explanation" is silence, and any model that gives that class to silence
accepts it. To read α with that in mind, every model is asked once about two probes at
its task's clip length, and the answers are stored in `model_probes`:

- `silence`: the all-zero signal;
- `noise-60dbfs`: white Gaussian noise at -60 dBFS, i.e. RMS exactly 10^(-60/20) of full
  scale 1.0, drawn from numpy's default_rng(0) (the same samples for every model and
  every run, so the answers can be compared).

The task's clip length is the median `n_samples` of the task's registered clips (the
lower median, so it is a length some clip has): a model's answer to silence can depend
on the length, and the card should describe the clips the models were explained on.

The ingest job stores a model's answers (`jobs.ingest`); the silence card reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sigwarehouse.models.scoring import entropy_bits, evaluate

if TYPE_CHECKING:
    import duckdb

    from sigwarehouse.models.base import AudioClassifier

PROBES = ("silence", "noise-60dbfs")
NOISE_DBFS = -60.0
NOISE_SEED = 0
PROBE_COLUMNS = ("model", "probe", "n_samples", "probs", "top1", "entropy_bits", "run_id")


def probe_wave(probe: str, n_samples: int) -> np.ndarray:
    """The probe's samples (float32, length n_samples); refuses an unknown probe name."""
    if probe == "silence":
        return np.zeros(n_samples, dtype=np.float32)
    if probe == "noise-60dbfs":
        noise = np.random.default_rng(NOISE_SEED).standard_normal(n_samples)
        # scaled to the exact RMS rather than relying on the draw's variance being 1
        rms = 10.0 ** (NOISE_DBFS / 20.0)
        return (noise * (rms / np.sqrt(np.mean(noise**2)))).astype(np.float32)
    raise ValueError(f"unknown probe {probe!r}; known: {', '.join(PROBES)}")


def task_clip_length(con: duckdb.DuckDBPyConnection, task: str) -> int | None:
    """The lower median n_samples of the task's registered clips; None without clips."""
    row = con.execute(
        "SELECT quantile_disc(n_samples, 0.5) FROM clips"
        " WHERE dataset IN (SELECT dataset FROM datasets WHERE task = ?)",
        [task],
    ).fetchall()
    return None if row[0][0] is None else int(row[0][0])


def pending_length(con: duckdb.DuckDBPyConnection, model: str, task: str) -> int | None:
    """The task's clip length when `model` lacks a probe answer at it, else None."""
    n_samples = task_clip_length(con, task)
    if n_samples is None:
        return None
    stored = con.execute(
        "SELECT count(DISTINCT probe) FROM model_probes"
        " WHERE model = ? AND n_samples = ? AND probe IN (SELECT unnest(?::VARCHAR[]))",
        [model, n_samples, list(PROBES)],
    ).fetchall()[0][0]
    return n_samples if stored < len(PROBES) else None


def probe_rows(clf: AudioClassifier, model: str, n_samples: int, run_id: str) -> list[tuple]:
    """`model_probes` rows of every probe on `clf` (the model named `model`).

    A non-finite output is stored as given, with top1 and entropy NULL: that a model
    gives no class to silence is itself what the card should show.
    """
    import torch  # torch: only to run a probe; planning reads without it

    waves = [torch.from_numpy(probe_wave(p, n_samples)).to(clf.device) for p in PROBES]
    probs = evaluate(clf, waves, batch_size=len(PROBES))
    rows = []  # in PROBE_COLUMNS order
    for probe, p in zip(PROBES, probs, strict=True):
        finite = bool(np.isfinite(p).all())
        top1 = int(p.argmax()) if finite else None
        bits = float(entropy_bits(p[None])[0]) if finite else None
        rows.append((model, probe, n_samples, p.tolist(), top1, bits, run_id))
    return rows
