"""A warehouse whose acceptances are planted: tests of the report's statistics state the
answer first (a 0/1 array: does target t accept source s's signal of clip c?) and then
read what the analyses make of it.

One two-class task `p` (labels a, b), dataset `pd`, models p1..pM, clips 1..C. Every
model explains every clip with class a (index 0); `accepted[k, c, s, t]` (k: 0 sufficient,
1 complete) says whether target t gives that class to source s's signal of clip c: its
stored top-1 is then 0, else 1. The diagonal is written as accepted, as real data has it.
`correct[m, c]` says whether model m's class for clip c is the clip's label (accuracy);
the catalog's accuracy of every model is 0.9, measured on 50 clips.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import numpy as np
import small_warehouse

KINDS = ("sufficient", "complete")
HASH = "0123456789abcdef"
N_BINS = 9


def models(n: int) -> list[str]:
    return [f"p{i + 1}" for i in range(n)]


def plant(path: Path, accepted: np.ndarray, correct: np.ndarray | None = None) -> None:
    """Write the planted rows into the initialised warehouse at `path`."""
    accepted = np.asarray(accepted, dtype=bool)
    _, n_clips, n_models, _ = accepted.shape
    names = models(n_models)
    correct = np.ones((n_models, n_clips), bool) if correct is None else np.asarray(correct)
    run = str(uuid.uuid4())
    mask = np.packbits(np.ones(N_BINS, bool)).tobytes()
    con = duckdb.connect(str(path))
    try:
        con.execute("INSERT INTO tasks VALUES ('p', ['a', 'b'], 16000, 0.1, NULL)")
        con.execute("INSERT INTO datasets VALUES ('pd', 'p', '/nowhere', 'folder', NULL, NULL)")
        con.execute(
            "INSERT INTO runs (run_id, job, task, params_hash, seed, code_version, started_at,"
            " status) VALUES (?, 'ingest', 'p', ?, 0, 'test', TIMESTAMP '2024-01-01', 'done')",
            [run, HASH],
        )
        for m in names:
            con.execute(
                "INSERT INTO models (model, task, kind, ref, labels, reported_accuracy,"
                " reported_accuracy_n) VALUES (?, 'p', 'zoo', 'x', ['a', 'b'], 0.9, 50)",
                [m],
            )
        rows: dict[str, list[dict]] = {"explanations": [], "original_probs": [], "signal_probs": []}
        for c in range(n_clips):
            con.execute(
                "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s,"
                " native_sample_rate, native_channels, n_samples) VALUES (?, 'pd', ?, 'h', 'a',"
                " 1.0, 16000, 1, 16000)",
                [c + 1, f"a/{c + 1}.flac"],
            )
            for i, m in enumerate(names):
                right = bool(correct[i, c])
                rows["original_probs"].append(
                    {"model": m, "clip_id": c + 1, "probs": [0.9, 0.1] if right else [0.1, 0.9],
                     "top1": 0 if right else 1, "entropy_bits": 0.469, "run_id": run}
                )  # fmt: skip
                rows["explanations"].append(
                    {"model": m, "clip_id": c + 1, "params_hash": HASH, "run_id": run,
                     "n_bins": N_BINS, "orig_class": 0, "orig_conf": 0.9,
                     "responsibility": b"", "sufficient_mask": mask,
                     "sufficient_size": N_BINS, "complete_mask": mask,
                     "complete_size": N_BINS, "queries": 1}
                )  # fmt: skip
                for k, kind in enumerate(KINDS):
                    for j, target in enumerate(names):
                        yes = i == j or bool(accepted[k, c, i, j])
                        rows["signal_probs"].append(
                            {"source_model": m, "clip_id": c + 1, "params_hash": HASH,
                             "kind": kind, "target_model": target, "source_class": 0,
                             "probs": [0.9, 0.1] if yes else [0.1, 0.9], "top1": 0 if yes else 1,
                             "entropy_bits": 0.469, "run_id": run}
                        )  # fmt: skip
        small_warehouse.insert(con, rows)
    finally:
        con.close()
