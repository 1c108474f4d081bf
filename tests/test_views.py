"""The transferability views equal a hand computation from the stored probabilities."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

LABELS = ["a", "b", "c"]
MODELS = ["m1", "m2", "m3", "m4"]
N_CLIPS = 12


def _probs(rng: random.Random) -> list[float]:
    raw = [rng.random() ** 3 for _ in LABELS]
    total = sum(raw)
    return [x / total for x in raw]


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log2(x) for x in p if x > 0)


@pytest.fixture
def filled(wh_path: Path):
    """A small warehouse with random (seeded) stored probabilities, and the rows inserted."""
    rng = random.Random(7)
    run = str(uuid.uuid4())
    con = duckdb.connect(str(wh_path))
    con.execute("INSERT INTO tasks VALUES ('t', ?, 16000, 0.5, NULL)", [LABELS])
    con.execute("INSERT INTO datasets VALUES ('d', 't', '/data', 'folder', NULL, NULL)")
    for m in MODELS:
        con.execute(
            "INSERT INTO models (model, task, kind, ref, labels) VALUES (?, 't', 'zoo', 'x', ?)",
            [m, LABELS],
        )
    clips, originals, signals = {}, [], []
    for i in range(N_CLIPS):
        label = rng.choice(LABELS)
        con.execute(
            "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s,"
            " native_sample_rate, native_channels, n_samples)"
            " VALUES (?, 'd', ?, 'h', ?, 1, 16000, 1, 16000)",
            [i, f"{i}.wav", label],
        )
        clips[i] = label
        for m in MODELS:
            p = _probs(rng)
            top1 = max(range(len(p)), key=p.__getitem__)
            originals.append((m, i, p, top1))
            con.execute(
                "INSERT INTO original_probs VALUES (?, ?, ?, ?, ?, ?)",
                [m, i, p, top1, _entropy(p), run],
            )
            for kind in ("sufficient", "complete", "inverse"):
                if kind == "complete" and rng.random() < 0.3:
                    continue  # some clips have no complete mask
                for target in MODELS:
                    q = _probs(rng)
                    t1 = max(range(len(q)), key=q.__getitem__)
                    signals.append((m, i, kind, target, top1, q, t1))
                    con.execute(
                        "INSERT INTO signal_probs VALUES (?, ?, 'h', ?, ?, ?, ?, ?, ?, ?)",
                        [m, i, kind, target, top1, q, t1, _entropy(q), run],
                    )
    yield con, clips, originals, signals
    con.close()


def test_model_accuracy_is_the_share_of_correct_top1(filled) -> None:
    con, clips, originals, _ = filled
    expected = defaultdict(list)
    for m, i, _p, top1 in originals:
        expected[m].append(LABELS[top1] == clips[i])
    rows = con.execute(
        "SELECT model, n_clips, accuracy FROM model_accuracy ORDER BY model"
    ).fetchall()
    assert [(m, n, pytest.approx(a)) for m, n, a in rows] == [
        (m, len(v), pytest.approx(sum(v) / len(v))) for m, v in sorted(expected.items())
    ]


def _alpha_by_hand(signals, accept) -> dict:
    cells = defaultdict(list)
    for m, _i, kind, target, source_class, q, t1 in signals:
        if kind in ("sufficient", "complete"):
            cells[(kind, m, target)].append(accept(source_class, q, t1))
    return {k: (len(v), sum(v) / len(v)) for k, v in cells.items()}


def test_alpha_matches_hand_computation(filled) -> None:
    con, _, _, signals = filled
    expected = _alpha_by_hand(signals, lambda c, _q, t1: t1 == c)
    rows = con.execute(
        "SELECT kind, source_model, target_model, n_signals, alpha FROM alpha_transferability"
    ).fetchall()
    assert len(rows) == len(expected) == 2 * len(MODELS) ** 2
    for kind, s, t, n, alpha in rows:
        assert (n, alpha) == (expected[(kind, s, t)][0], pytest.approx(expected[(kind, s, t)][1]))


@pytest.mark.parametrize("eps", [0.3, 0.6, 1.0])
def test_beta_matches_hand_computation(filled, eps: float) -> None:
    con, _, _, signals = filled
    limit = eps * math.log2(len(LABELS))
    expected = _alpha_by_hand(signals, lambda _c, q, _t1: _entropy(q) <= limit + 1e-6)
    rows = con.execute(
        "SELECT kind, source_model, target_model, n_signals, beta FROM beta_transferability(?)",
        [eps],
    ).fetchall()
    assert len(rows) == len(expected)
    for kind, s, t, n, beta in rows:
        assert (n, beta) == (expected[(kind, s, t)][0], pytest.approx(expected[(kind, s, t)][1]))


def test_summary_and_flat_earthers_follow_their_rule(filled) -> None:
    con, _, _, signals = filled
    alpha = _alpha_by_hand(signals, lambda c, _q, t1: t1 == c)
    for kind in ("sufficient", "complete"):
        out = {m: sum(alpha[(kind, m, t)][1] for t in MODELS if t != m) / 3 for m in MODELS}
        inn = {m: sum(alpha[(kind, s, m)][1] for s in MODELS if s != m) / 3 for m in MODELS}
        rows = con.execute(
            "SELECT model, avg_out, avg_in FROM transferability_summary"
            " WHERE kind = ? ORDER BY model",
            [kind],
        ).fetchall()
        assert rows == [(m, pytest.approx(out[m]), pytest.approx(inn[m])) for m in MODELS]
        for margin in (0.0, 0.05, 0.1):
            flagged = {
                m
                for m in MODELS
                if out[m] < sum(out[o] for o in MODELS if o != m) / 3 - margin
                and inn[m] < sum(inn[o] for o in MODELS if o != m) / 3 - margin
            }
            got = con.execute(
                "SELECT model FROM flat_earthers_at(?) WHERE kind = ? AND flat_earther",
                [margin, kind],
            ).fetchall()
            assert {m for (m,) in got} == flagged
    default = con.execute("SELECT count(*) FROM flat_earthers").fetchone()[0]
    assert default == 2 * len(MODELS)


def test_views_work_in_stock_duckdb_without_sigwarehouse(filled, wh_path: Path) -> None:
    con = filled[0]
    con.close()
    import subprocess
    import sys

    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(con.execute('SELECT count(*) FROM alpha_transferability').fetchone()[0]);"
        "print(con.execute('SELECT count(*) FROM beta_transferability(0.5)').fetchone()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, str(wh_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [str(2 * len(MODELS) ** 2)] * 2
