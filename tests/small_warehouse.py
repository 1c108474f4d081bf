"""Fill a fresh warehouse with a small, seeded, hand-made ingest result (used by the
analysis and report tests). Everything inserted is also returned, so tests can compute
the expected figures by hand from the same rows.

Two tasks: `t` (3 classes, models m1..m4, dataset d) and `u` (2 classes, models s1..s3,
dataset e). Each clip has real audio (a few tones and noise, stored as a FLAC blob), each
model an explanation per clip with packed masks, and every model's probabilities on
every model's sufficient, complete and inverse signals. About a third of the
explanations have no complete mask, one (m1 on clip 2) has no mask at all, as happens in
real runs, and one (m2 on clip 1) a sufficient mask of a single bin.

Silence, as real models give it: every model has stored answers to the probes (the
all-zero signal and noise at -60 dBFS). Where m3's class for a clip is its class for
silence, its sufficient mask is empty; s3 is deaf (it gives every clip its
silence answer), so all its sufficient masks are empty. An empty signal is silence, so
every target's probabilities on it are the target's silence answer.

Two planted values test the β bound: m1's sufficient signal of its first clip gives m2
probabilities (0.5, 0.25, 0.25) with 0.5 on m1's class, an entropy of exactly 1.5 bits;
and m2's sufficient signal of its first clip gives m4 a near-uniform output whose float32
probabilities sum to just over 1, so its stored entropy lies a rounding above log2(3).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from sigwarehouse.audio import encode_flac
from sigwarehouse.freqrex.spectral import pack_mask
from sigwarehouse.store import transfer_counts

TASKS = {
    "t": {"labels": ["a", "b", "c"], "models": ["m1", "m2", "m3", "m4"], "dataset": "d"},
    "u": {"labels": ["real", "fake"], "models": ["s1", "s2", "s3"], "dataset": "e"},
}
RATE = 16000
N_SAMPLES = 8000  # 0.5 s
N_BINS = N_SAMPLES // 2 + 1
PARAMS = {"seed": 0, "space": "fft", "delta": 0.5}
PARAMS_HASH = "feedfacecafebeef"
NO_MASK = ("m1", 2)  # an explanation whose search found no sufficient mask
ONE_BIN = ("m2", 1)  # a sufficient mask of one bin: the smallest non-empty one
SOMETIMES_EMPTY = "m3"  # empty sufficient mask on the clips it gives its silence class
DEAF = "s3"  # gives every clip its silence answer: every sufficient mask is empty
PROBES = ("silence", "noise-60dbfs")
EXACT_ENTROPY = ("m1", "m2", 1.5)  # (source, target, bits) on the source's first clip
ABOVE_LOG2N = ("m2", "m4")  # (source, target) on the source's first clip


@dataclass
class Filled:
    labels: dict[str, list[str]]  # task -> labels
    clips: dict[int, tuple[str, str]] = field(default_factory=dict)  # clip -> (task, label)
    originals: list[tuple] = field(default_factory=list)  # (model, clip, probs, top1)
    # (task, source, clip, kind, target, source_class, probs, top1)
    signals: list[tuple] = field(default_factory=list)
    audio: dict[int, np.ndarray] = field(default_factory=dict)
    masks: dict[tuple[str, int], tuple[np.ndarray | None, np.ndarray | None]] = field(
        default_factory=dict
    )
    probes: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (model, probe)


def entropy(p: list[float]) -> float:
    return -sum(x * math.log2(x) for x in p if x > 0)


def _probs(rng: random.Random, n: int, favour: int | None = None, bias: float = 0.0) -> list[float]:
    raw = [rng.random() ** 3 for _ in range(n)]
    if favour is not None:
        raw[favour] += bias  # makes some models agree more than chance
    total = sum(raw)
    return [x / total for x in raw]


def _audio(rng: random.Random) -> np.ndarray:
    t = np.arange(N_SAMPLES) / RATE
    x = sum(0.15 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(3))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 0.02, N_SAMPLES)
    return (x + noise).astype(np.float32)


def _masks(rng: random.Random) -> tuple[np.ndarray, np.ndarray | None]:
    start = rng.randrange(0, N_BINS - 800)
    suff = np.zeros(N_BINS, dtype=bool)
    suff[start : start + rng.randrange(50, 400)] = True
    if rng.random() < 0.33:
        return suff, None
    comp = suff.copy()
    comp[max(0, start - 200) : start + 800] = True
    return suff, comp


def fill(path: Path, seed: int = 7, n_clips: int = 10, tasks: dict | None = None) -> Filled:
    """Insert the seeded rows into the initialised warehouse at `path`; returns them.
    `tasks` replaces TASKS (e.g. more models, for a report's layout)."""
    tasks = tasks or TASKS
    rng = random.Random(seed)
    run = str(uuid.uuid4())
    out = Filled(labels={t: spec["labels"] for t, spec in tasks.items()})
    rows: dict[str, list[dict]] = {"original_probs": [], "explanations": [], "signal_probs": []}
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "INSERT INTO runs (run_id, job, task, params_hash, seed, code_version, started_at,"
            " ended_at, status, clips_done) VALUES (?, 'ingest', 't', ?, 0, 'test',"
            " TIMESTAMP '2024-01-01 10:00:00', TIMESTAMP '2024-01-01 10:05:00', 'done', ?)",
            [run, PARAMS_HASH, n_clips],
        )
        con.execute("INSERT INTO freqrex_params VALUES (?, ?)", [PARAMS_HASH, json.dumps(PARAMS)])
        clip_id = 0
        for task, spec in tasks.items():
            labels, models = spec["labels"], spec["models"]
            con.execute("INSERT INTO tasks VALUES (?, ?, ?, 0.5, NULL)", [task, labels, RATE])
            con.execute(
                "INSERT INTO datasets VALUES (?, ?, '/nowhere', 'folder', NULL, NULL)",
                [spec["dataset"], task],
            )
            for i, m in enumerate(models):
                con.execute(
                    "INSERT INTO models (model, task, kind, ref, backbone, n_params, labels)"
                    " VALUES (?, ?, 'zoo', 'x', ?, ?, ?)",
                    [m, task, "cnn" if i % 2 else "mlp", 10_000 * (i + 1), labels],
                )
            _fill_probes(con, out, random.Random(seed + 1), run, task, models, len(labels))
            for _ in range(n_clips):
                clip_id += 1
                label = rng.choice(labels)
                audio = _audio(rng)
                con.execute(
                    "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s,"
                    " native_sample_rate, native_channels, n_samples, audio)"
                    " VALUES (?, ?, ?, 'h', ?, ?, ?, 1, ?, ?)",
                    [clip_id, spec["dataset"], f"{label}/{clip_id}.flac", label,
                     N_SAMPLES / RATE, RATE, N_SAMPLES, encode_flac(audio, RATE)],
                )  # fmt: skip
                out.clips[clip_id] = (task, label)
                out.audio[clip_id] = audio
                _fill_clip(rows, rng, out, run, task, labels, models, clip_id, labels.index(label))
        insert(con, rows)
    finally:
        con.close()
    return out


def insert(con: duckdb.DuckDBPyConnection, rows: dict[str, list[dict]]) -> None:
    """Insert each table's records (dicts by column name), then rebuild the transfer
    counts: what any writer of signal_probs other than sigwarehouse's must do (the views
    read them)."""
    for table, records in rows.items():
        frame = pl.DataFrame(records, infer_schema_length=None)  # noqa: F841 (read by SQL)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
    transfer_counts.rebuild(con)


def _top1(p: list[float]) -> int:
    return max(range(len(p)), key=p.__getitem__)


def _fill_probes(con, out: Filled, rng: random.Random, run, task, models, n) -> None:
    """Each model's answers to the probes (a confident class for silence), stored."""
    for m in models:
        for probe in PROBES:
            p = _probs(rng, n, rng.randrange(n), 3.0)
            out.probes[(m, probe)] = p
            con.execute(
                "INSERT INTO model_probes VALUES (?, ?, ?, ?, ?, ?, ?)",
                [m, probe, N_SAMPLES, p, _top1(p), entropy(p), run],
            )


def _planted(out: Filled, m: str, target: str, clip_id: int, kind: str, top1: int, n: int):
    """The planted probabilities of the β bound tests, or None (see the module docstring)."""
    first = min(c for c, (task, _l) in out.clips.items() if task == "t")
    if kind != "sufficient" or clip_id != first:
        return None
    if (m, target) == EXACT_ENTROPY[:2]:
        return [0.5 if k == top1 else 0.25 for k in range(n)]
    if (m, target) == ABOVE_LOG2N:
        p = np.full(n, np.float32(1 / n), dtype=np.float32)
        for _ in range(4):  # a sum of about 1 + 4e-7, as a float32 softmax can give
            p = np.nextafter(p, np.float32(1))
        p[top1] = np.nextafter(p[top1], np.float32(1))  # the source's class stays top-1
        return [float(x) for x in p]
    return None


def _fill_clip(rows, rng, out: Filled, run, task, labels, models, clip_id, truth) -> None:
    n = len(labels)
    for m in models:
        silence = out.probes[(m, "silence")]
        p = list(silence) if m == DEAF else _probs(rng, n, truth, 0.6)
        top1 = _top1(p)
        out.originals.append((m, clip_id, p, top1))
        rows["original_probs"].append(
            {"model": m, "clip_id": clip_id, "probs": p, "top1": top1,
             "entropy_bits": entropy(p), "run_id": run}
        )  # fmt: skip
        suff, comp = _masks(rng)
        if (m, clip_id) == NO_MASK:
            suff = comp = None
        if (m, clip_id) == ONE_BIN:
            suff = np.arange(N_BINS) == int(np.flatnonzero(suff)[0])
        empty = m == DEAF or (m == SOMETIMES_EMPTY and top1 == _top1(silence))
        if empty:
            suff = np.zeros(N_BINS, dtype=bool)
        out.masks[(m, clip_id)] = (suff, comp)
        rows["explanations"].append(
            {"model": m, "clip_id": clip_id, "params_hash": PARAMS_HASH, "run_id": run,
             "n_bins": N_BINS, "orig_class": top1, "orig_conf": p[top1],
             "responsibility": np.zeros(N_BINS, np.float16).tobytes(),
             "sufficient_mask": None if suff is None else pack_mask(suff),
             "sufficient_size": None if suff is None else int(suff.sum()),
             "sufficient_reason": "search-failed" if suff is None
                else "empty-signal-keeps-class" if empty else None,
             "complete_mask": None if comp is None else pack_mask(comp),
             "complete_size": None if comp is None else int(comp.sum()),
             "complete_reason": "no-delta-complete-mask" if comp is None else None,
             "queries": 100}
        )  # fmt: skip
        kinds = ([] if suff is None else ["sufficient"]) + (
            [] if comp is None else ["complete", "inverse"]
        )
        for kind in kinds:
            for target in models:
                planted = _planted(out, m, target, clip_id, kind, top1, n)
                if kind == "sufficient" and empty:  # silence: the target's silence answer
                    q = list(out.probes[(target, "silence")])
                elif planted is not None:
                    q = planted
                # the source keeps its class on its own sufficient/complete signals
                elif target == m and kind != "inverse":
                    q = _probs(rng, n, top1, 5.0)
                else:
                    q = _probs(rng, n, top1, 0.4 if kind == "complete" else 0.2)
                t1 = _top1(q)
                out.signals.append((task, m, clip_id, kind, target, top1, q, t1))
                rows["signal_probs"].append(
                    {"source_model": m, "clip_id": clip_id, "params_hash": PARAMS_HASH,
                     "kind": kind, "target_model": target, "source_class": top1, "probs": q,
                     "top1": t1, "entropy_bits": entropy(q), "run_id": run}
                )  # fmt: skip
