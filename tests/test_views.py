"""The transferability views equal a hand computation from the stored probabilities."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sigwarehouse.store import transfer_counts

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
            # the explanation the signals come from (no masks: only its parameter set counts)
            con.execute(
                "INSERT INTO explanations (model, clip_id, params_hash, run_id, n_bins,"
                " orig_class, orig_conf, responsibility, queries)"
                " VALUES (?, ?, 'h', ?, 8001, ?, ?, ''::BLOB, 0)",
                [m, i, run, top1, p[top1]],
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
    transfer_counts.rebuild(con)  # rows inserted by hand, not by sigwarehouse's writer
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
    # Def. 4: the target's class is the source's AND the target is confident enough.
    joint = _alpha_by_hand(signals, lambda c, q, t1: t1 == c and _entropy(q) <= limit + 1e-6)
    entropy_only = _alpha_by_hand(signals, lambda _c, q, _t1: _entropy(q) <= limit + 1e-6)
    rows = con.execute(
        "SELECT kind, source_model, target_model, n_signals, beta, beta_entropy_only"
        " FROM beta_transferability(?)",
        [eps],
    ).fetchall()
    assert len(rows) == len(joint)
    for kind, s, t, n, beta, only in rows:
        key = (kind, s, t)
        assert (n, beta, only) == (
            joint[key][0], pytest.approx(joint[key][1]), pytest.approx(entropy_only[key][1])
        )  # fmt: skip


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


# --- β's joint reading and silence, on the small fixed warehouse (tests/small_warehouse.py) ---


@pytest.fixture(scope="module")
def small(small_filled, tmp_path_factory):
    """The small warehouse, and its stored signals as numpy recomputes them from the raw
    tables: one dict per sufficient/complete signal_probs row."""
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path_factory.mktemp("small"))
    con = duckdb.connect(str(path), read_only=True)
    yield con, _signals_by_numpy(con)
    con.close()


def _signals_by_numpy(con) -> list[dict]:
    """Each signal's cell, accepted (argmax of the stored probabilities = source class),
    entropy (bits, from the stored probabilities), n_classes and whether its mask is empty
    (unpacked from the stored mask bits; None when the explanation is missing)."""
    n_classes = dict(
        con.execute(
            "SELECT m.model, len(t.labels) FROM models m JOIN tasks t USING (task)"
        ).fetchall()
    )
    masks = {
        (model, clip, ph, kind): (blob, n_bins)
        for model, clip, ph, n_bins, suff, comp in con.execute(
            "SELECT model, clip_id, params_hash, n_bins, sufficient_mask, complete_mask"
            " FROM explanations"
        ).fetchall()
        for kind, blob in (("sufficient", suff), ("complete", comp))
    }
    out = []
    for source, clip, ph, kind, target, c, probs in con.execute(
        "SELECT source_model, clip_id, params_hash, kind, target_model, source_class, probs"
        " FROM signal_probs WHERE kind IN ('sufficient', 'complete')"
    ).fetchall():
        p = np.asarray(probs, dtype=np.float64)
        blob, n_bins = masks.get((source, clip, ph, kind), (None, 0))
        bits = None if blob is None else np.unpackbits(np.frombuffer(blob, np.uint8))[:n_bins]
        out.append({
            "cell": (kind, source, target), "clip": clip, "class": c,
            "accepted": bool(p.argmax() == c),
            "entropy": float(-(p[p > 0] * np.log2(p[p > 0])).sum()),
            "n_classes": n_classes[source],
            "empty": None if bits is None else not bits.any(),
        })  # fmt: skip
    return out


def _by_cell(signals: list[dict]) -> dict[tuple, list[dict]]:
    cells = defaultdict(list)
    for s in signals:
        cells[s["cell"]].append(s)
    return cells


def _close(a, b) -> bool:
    """Equal up to float rounding, element-wise for tuples; None equals only None."""
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(_close, a, b))
    return a is b if a is None or b is None else a == pytest.approx(b)


def _same(got: dict, want: dict) -> bool:
    """Equal keys, and _close values."""
    return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)


def _share(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def test_beta_at_eps_one_equals_alpha_on_every_cell(small) -> None:
    con, signals = small
    # The planted near-uniform output (probabilities summing to just over 1) has a stored
    # entropy above log2(3) even at FLOAT precision: it must still count at ε = 1.
    above = [
        e for (e,) in con.execute(
            "SELECT entropy_bits FROM signal_probs WHERE kind = 'sufficient'"
            " AND top1 = source_class AND entropy_bits > ?::FLOAT", [math.log2(3)]
        ).fetchall()
    ]  # fmt: skip
    assert above, "the fixture lost its entropy above log2(n): this test would prove less"
    expected = {k: _share([s["accepted"] for s in v]) for k, v in _by_cell(signals).items()}
    beta = con.execute(
        "SELECT kind, source_model, target_model, beta FROM beta_transferability(1.0)"
    ).fetchall()
    alpha = con.execute(
        "SELECT kind, source_model, target_model, alpha FROM alpha_transferability"
    ).fetchall()
    assert len(beta) == len(alpha) == len(expected)
    for rows in (beta, alpha):
        assert {(k, s, t): v for k, s, t, v in rows} == pytest.approx(expected)


def test_beta_counts_an_entropy_that_sits_exactly_on_the_bound(small) -> None:
    from small_warehouse import EXACT_ENTROPY

    con, signals = small
    source, target, bits = EXACT_ENTROPY
    eps = bits / math.log2(3)  # the planted (0.5, 0.25, 0.25) sits on eps·log2(3)
    bound = {s["n_classes"]: eps * math.log2(s["n_classes"]) for s in signals}
    on_bound = [s for s in signals if abs(s["entropy"] - bound[s["n_classes"]]) < 1e-4]
    # Only the planted signal is near the bound, so the tolerance below decides nothing else.
    assert [(s["cell"][1:], s["accepted"]) for s in on_bound] == [((source, target), True)]
    expected, entropy_only = {}, {}
    for key, cell in _by_cell(signals).items():
        confident = [s["entropy"] <= bound[s["n_classes"]] + 1e-6 for s in cell]
        expected[key] = _share(
            [s["accepted"] and ok for s, ok in zip(cell, confident, strict=True)]
        )
        entropy_only[key] = _share(confident)
    rows = con.execute(
        "SELECT kind, source_model, target_model, beta, beta_entropy_only"
        " FROM beta_transferability(?)",
        [eps],
    ).fetchall()
    assert {(k, s, t): b for k, s, t, b, _ in rows} == pytest.approx(expected)
    assert {(k, s, t): o for k, s, t, _, o in rows} == pytest.approx(entropy_only)


def test_n_empty_and_alpha_nonempty_equal_numpy_on_masks_and_probabilities(small) -> None:
    con, signals = small
    expected = {}
    for key, cell in _by_cell(signals).items():
        nonempty = [s["accepted"] for s in cell if s["empty"] is False]
        expected[key] = (len(cell), sum(s["empty"] is True for s in cell), _share(nonempty))
    rows = con.execute(
        "SELECT kind, source_model, target_model, n_signals, n_empty, alpha_nonempty"
        " FROM alpha_transferability"
    ).fetchall()
    got = {(k, s, t): (n, e, a) for k, s, t, n, e, a in rows}
    assert _same(got, expected)
    # The fixture holds what the columns exist for: cells with some and with only silence.
    assert any(0 < e < n for n, e, _ in got.values())
    assert any(a is None and e == n for n, e, a in got.values())
    assert all(e == 0 for (kind, _s, _t), (_n, e, _a) in got.items() if kind == "complete")
    beta = con.execute(
        "SELECT kind, source_model, target_model, n_empty, beta_nonempty"
        " FROM beta_transferability(1.0)"
    ).fetchall()
    assert _same(
        {(k, s, t): (e, b) for k, s, t, e, b in beta},
        {k: (e, a) for k, (_n, e, a) in expected.items()},
    )


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def test_summary_and_flat_earthers_report_silence_beside_alpha(small) -> None:
    con, signals = small
    cells = _by_cell(signals)
    models = sorted({s for _k, s, _t in cells})
    want = {}
    for kind in ("sufficient", "complete"):
        for m in models:
            row = [v for (k, s, t), v in cells.items() if k == kind and s == m and t != m]
            col = [v for (k, s, t), v in cells.items() if k == kind and t == m and s != m]
            own = cells.get((kind, m, m), [])

            def nonempty(cell):
                return _share([s["accepted"] for s in cell if s["empty"] is False])

            want[(kind, m)] = (
                len(own), sum(s["empty"] is True for s in own),
                _mean([nonempty(c) for c in row]), _mean([nonempty(c) for c in col]),
                sum(s["empty"] is True for c in col for s in c),
            )  # fmt: skip
    rows = con.execute(
        "SELECT kind, model, n_signals, n_empty, avg_out_nonempty, avg_in_nonempty, n_empty_in"
        " FROM transferability_summary"
    ).fetchall()
    assert _same({(k, m): tuple(v) for k, m, *v in rows}, want)
    # Flat-earthers: the non-empty gaps compare with the peers that have a figure.
    flat = con.execute(
        "SELECT kind, model, n_empty, avg_out_nonempty, gap_out_nonempty, gap_in_nonempty"
        " FROM flat_earthers"
    ).fetchall()
    task_of = dict(con.execute("SELECT model, task FROM models").fetchall())
    for kind, model, n_empty, out_ne, gap_out, gap_in in flat:
        peers = [m for m in models if m != model and task_of[m] == task_of[model]]
        assert n_empty == want[(kind, model)][1]
        assert _close(out_ne, want[(kind, model)][2])
        for i, gap in ((2, gap_out), (3, gap_in)):
            own, others = want[(kind, model)][i], _mean([want[(kind, p)][i] for p in peers])
            assert _close(gap, None if own is None or others is None else own - others)


def test_a_gap_exactly_at_the_margin_does_not_make_a_flat_earther(small) -> None:
    """The rule is strict: both gaps below -margin. At a margin equal to minus a model's
    larger gap, that gap sits exactly on the bound and the model is no flat-earther; at a
    margin a hair smaller, both gaps are below it and the model is one."""
    con, _signals = small
    rows = con.execute(
        "SELECT kind, model, gap_out, gap_in FROM flat_earthers_at(0)"
        " WHERE gap_out IS NOT NULL AND gap_in IS NOT NULL"
    ).fetchall()
    assert rows
    for kind, model, gap_out, gap_in in rows:
        margin = -max(gap_out, gap_in)
        for m, want in ((margin, False), (margin - 1e-9, True)):
            (flat,) = con.execute(
                "SELECT flat_earther FROM flat_earthers_at(?) WHERE kind = ? AND model = ?",
                [m, kind, model],
            ).fetchone()
            assert flat is want, (kind, model, m)


def test_a_half_ingested_task_lists_every_model_in_the_summary(small_filled, tmp_path) -> None:
    """While only m1 of task t is explained, m1 has outgoing but no incoming signals and
    m2..m4 incoming but no outgoing ones: the summary lists all four, with NULL where a
    direction has no signals yet."""
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM signal_probs WHERE source_model IN ('m2', 'm3', 'm4')")
    transfer_counts.rebuild(con)  # rows deleted by hand, not through sigwarehouse
    rows = con.execute(
        "SELECT model, avg_out IS NULL, avg_in IS NULL FROM transferability_summary"
        " WHERE task = 't' AND kind = 'sufficient' ORDER BY model"
    ).fetchall()
    con.close()
    assert rows == [("m1", False, True), ("m2", True, False), ("m3", True, False),
                    ("m4", True, False)]  # fmt: skip


N_BINS_SMALL = 4001  # the small warehouse's clips: 8000 samples


def test_label_transfer_and_compositionality_follow_their_definitions(small_filled, tmp_path):
    """label_transfer: per model, signature ("from") class, the clip's own ("to") class and
    mask, the share of clips the mask turns into the signature class, counting only clips
    not already of it; compositionality: degree = composed / candidates (NULL for none)."""
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path)
    con = duckdb.connect(str(path))
    run = str(uuid.uuid4())
    rng = random.Random(5)
    clips = [c for c, (task, _label) in small_filled[1].clips.items() if task == "u"]
    rows = []
    for clip in clips:
        for mask in ("sufficient", "members"):
            orig, top1 = rng.randrange(2), int(rng.random() < 0.8)  # mostly flipped
            kept = rng.randrange(0, N_BINS_SMALL + 1)
            rows.append(("s1", clip, "h", 3, 1, mask, run, N_BINS_SMALL, kept, [0.5, 0.5], orig,
                         [0.5, 0.5], top1))  # fmt: skip
    con.executemany(
        "INSERT INTO label_transfers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    want = {}
    for r in rows:
        if r[10] == r[4]:
            continue  # the clip is of the signature class already: nothing to transfer
        want.setdefault((r[5], ["real", "fake"][r[10]]), []).append(r)
    got = con.execute(
        "SELECT mask, to_class, from_class, n_clips, n_flipped, share_flipped, mean_kept_share"
        " FROM label_transfer WHERE model = 's1'"
    ).fetchall()
    assert {(g[0], g[1]) for g in got} == set(want)
    assert any(2 * g[4] != g[3] for g in got)  # flips and non-flips differ in number
    for mask, to_class, from_class, n, flipped, share, kept in got:
        group = want[mask, to_class]
        assert from_class == "fake" and n == len(group)
        assert flipped == sum(r[12] == r[4] for r in group)
        assert share == pytest.approx(flipped / n)
        assert kept == pytest.approx(np.mean([r[8] / r[7] for r in group]))

    for cls, (candidates, composed, empty) in enumerate([(5, 2, 1), (0, 0, 3)]):
        con.execute(
            "INSERT INTO composites (model, dataset, class, params_hash, seed, run_id, candidates,"
            " members, n_candidates, n_composed, n_empty, n_samples, sample_rate, queries)"
            " VALUES ('s1', 'e', ?, 'h', 3, ?, [], [], ?, ?, ?, 0, 16000, 0)",
            [cls, run, candidates, composed, empty],
        )
    degrees = con.execute(
        "SELECT class, degree, n_empty FROM compositionality ORDER BY class"
    ).fetchall()
    con.close()
    assert degrees == [("fake", None, 3), ("real", 0.4, 1)]
