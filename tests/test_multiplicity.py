"""Several disjoint sufficient explanations per clip (freqrex n_sufficient = K).

`sigwh ingest --param n_sufficient=3` on the shipped spoof clips (two of each label) with
one zoo model, a second model in the catalog, and a third added afterwards (so its
answers come from the cross-model fill). Everything is checked from outside the code
under test: masks unpacked with numpy, signals rebuilt with plain torch FFTs
(tests/reference.py), every model called directly.

Properties: every further mask (rank >= 2) is disjoint from rank 1 and from the others,
and alone keeps the class; every model's stored probabilities on each rank's signal are
its direct answer; `alpha_by_rank` at rank 1 is `alpha_transferability`'s sufficient
cells row for row, and at rank 2 the share recomputed from the direct answers;
`explanation_multiplicity` counts what is stored; a warehouse made with n_sufficient = 1
has rank 1 only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
import torch
from light_params import ARGS
from reference import fft_signal
from sharing import sigwh

from sigwarehouse import catalog, clips, store
from sigwarehouse.models.labels import model_labels
from sigwarehouse.models.loader import load_classifier

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("multiplicity")

REPO = Path(__file__).resolve().parents[1]
EXPLAINER, OTHER, LATER = "sp1", "sp2", "sp3"
K = 3


def _catalog(root: Path, models: tuple[str, ...]) -> Path:
    """The shipped spoof task and dataset, and only `models` of its zoo (refs absolute)."""
    cat = root / "catalog"
    shutil.rmtree(cat, ignore_errors=True)
    (cat / "datasets").mkdir(parents=True)
    (cat / "models").mkdir()
    tasks = (REPO / "ingest/tasks.toml").read_text()
    (cat / "tasks.toml").write_text(tasks[tasks.index("[spoof]") : tasks.index("# Voice")])
    dataset = (REPO / "ingest/datasets/spoof-eval.toml").read_text()
    (cat / "datasets/spoof-eval.toml").write_text(dataset.replace('"../../data/', f'"{REPO}/data/'))
    entries = (REPO / "ingest/models/spoof.toml").read_text().split("[[model]]")[1:]
    kept = [e for e in entries if e.split('"')[1] in models]
    text = "".join(f"[[model]]{e}" for e in kept).replace('"../../data/', f'"{REPO}/data/')
    (cat / "models/spoof.toml").write_text(text)
    return cat


def _ingest(path: Path, model: str, k: int, *more: str) -> None:
    args = ["ingest", "--model", model, "--per-label", "2", "--param", f"n_sufficient={k}"]
    result = sigwh(path, *args, *ARGS, *more)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multiplicity")
    path, _ = store.init(root / "warehouse.duckdb")
    with store.opened(path) as con:
        catalog.sync(con, _catalog(root, (EXPLAINER, OTHER)))
        clips.add_dataset(con, "spoof-eval", progress=False, per_label=2)
    _ingest(path, EXPLAINER, K)
    with store.opened(path) as con:
        catalog.sync(con, _catalog(root, (EXPLAINER, OTHER, LATER)))
    # evaluates EXPLAINER's stored signals, every rank, on LATER (what the tests read);
    # LATER's own explanations are not, so it explains one clip only
    _ingest(path, LATER, K, "--limit", "1")
    return path


def _rows(path: Path, sql: str) -> list[tuple]:
    con = store.connect(path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _classifier(con: duckdb.DuckDBPyConnection, model: str):
    kind, ref = con.execute("SELECT kind, ref FROM models WHERE model = ?", [model]).fetchone()
    return load_classifier(kind, ref, model_labels(kind, ref))


def _masks(path: Path) -> list[tuple[int, Path, int, np.ndarray, list[np.ndarray]]]:
    """(clip_id, file, class, rank-1 mask, [rank 2.. masks]) of EXPLAINER's explanations."""
    out = []
    rows = _rows(
        path,
        "SELECT e.clip_id, d.root || '/' || c.path, e.orig_class, e.n_bins, e.sufficient_mask,"
        " list(r.mask ORDER BY r.rank) FILTER (WHERE r.mask IS NOT NULL)"
        " FROM explanations e JOIN clips c USING (clip_id) JOIN datasets d USING (dataset)"
        " LEFT JOIN sufficient_ranks r USING (model, clip_id, params_hash)"
        f" WHERE e.model = '{EXPLAINER}' GROUP BY ALL ORDER BY e.clip_id",
    )
    for clip_id, file, cls, n, first, further in rows:

        def unpack(blob: bytes, n: int = n) -> np.ndarray:
            return np.unpackbits(np.frombuffer(blob, np.uint8), count=n).astype(bool)

        out.append((clip_id, Path(file), cls, unpack(first), [unpack(b) for b in further or []]))
    return out


def test_further_masks_are_disjoint_and_each_keeps_the_class(built: Path) -> None:
    con = store.connect(built, read_only=True)
    try:
        model = _classifier(con, EXPLAINER)
    finally:
        con.close()
    masks = _masks(built)
    assert any(further for *_, further in masks), "no clip got a second sufficient mask"
    for clip_id, file, cls, first, further in masks:
        assert len(further) <= K - 1
        used = first.copy()
        for mask in further:
            assert mask.any() and not (mask & used).any(), clip_id
            used |= mask
            wave = torch.from_numpy(sf.read(file, dtype="float32")[0])
            probs = model(fft_signal(wave, mask.astype(float)).float()[None])[0]
            assert int(probs.argmax()) == cls, clip_id


def test_every_model_answered_every_rank_as_a_direct_call_does(built: Path) -> None:
    con = store.connect(built, read_only=True)
    try:
        models = {m: _classifier(con, m) for m in (EXPLAINER, OTHER, LATER)}
        stored = {
            (clip_id, kind, target): np.asarray(probs)
            for clip_id, kind, target, probs in con.execute(
                "SELECT clip_id, kind, target_model, probs FROM signal_probs"
                f" WHERE source_model = '{EXPLAINER}' AND kind LIKE 'sufficient%'"
            ).fetchall()
        }
    finally:
        con.close()
    expected = set()
    for clip_id, file, _cls, _first, further in _masks(built):
        wave = torch.from_numpy(sf.read(file, dtype="float32")[0])
        for rank, mask in enumerate(further, start=2):
            signal = fft_signal(wave, mask.astype(float)).float()[None]
            for target, clf in models.items():
                expected.add((clip_id, f"sufficient-{rank}", target))
                direct = clf(signal)[0].numpy()
                np.testing.assert_allclose(
                    stored[clip_id, f"sufficient-{rank}", target], direct, atol=2e-4
                )
    assert expected and expected <= set(stored)
    assert {k for k in stored if k[1] != "sufficient"} == expected


def test_alpha_by_rank_one_is_alpha_and_rank_two_is_the_direct_share(built: Path) -> None:
    cell = "task, dataset, source_model, target_model, n_signals, alpha, n_empty, alpha_nonempty"
    rank1 = _rows(built, f"SELECT {cell} FROM alpha_by_rank WHERE rank = 1 ORDER BY ALL")
    alpha = _rows(
        built, f"SELECT {cell} FROM alpha_transferability WHERE kind = 'sufficient' ORDER BY ALL"
    )
    assert rank1 == alpha and rank1
    rank2 = dict(
        ((s, t), (n, a))
        for s, t, n, a in _rows(
            built,
            "SELECT source_model, target_model, n_signals, alpha FROM alpha_by_rank WHERE rank = 2",
        )
    )
    con = store.connect(built, read_only=True)
    try:
        models = {m: _classifier(con, m) for m in (EXPLAINER, OTHER, LATER)}
    finally:
        con.close()
    seconds = [(f, c, further[0]) for _id, f, c, _first, further in _masks(built) if further]
    for target, clf in models.items():
        kept = []
        for file, cls, mask in seconds:
            wave = torch.from_numpy(sf.read(file, dtype="float32")[0])
            kept.append(
                int(clf(fft_signal(wave, mask.astype(float)).float()[None]).argmax()) == cls
            )
        n, a = rank2[EXPLAINER, target]
        assert n == len(seconds) and a == pytest.approx(np.mean(kept)), target


def test_multiplicity_counts_what_is_stored(built: Path) -> None:
    direct: dict[tuple[str, int], int] = {}
    labels = ["real", "fake"]
    for _clip, _file, cls, _first, further in _masks(built):
        key = (labels[cls], 1 + len(further))
        direct[key] = direct.get(key, 0) + 1
    view = _rows(
        built,
        "SELECT class, multiplicity, n_clips, n_sufficient FROM explanation_multiplicity"
        f" WHERE model = '{EXPLAINER}'",
    )
    assert {(c, m): n for c, m, n, _k in view} == direct
    assert {k for *_, k in view} == {K}


def test_a_warehouse_with_one_sufficient_mask_per_clip_has_rank_one_only(
    small_filled, tmp_path: Path
) -> None:
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path)
    ranks = _rows(path, "SELECT DISTINCT rank FROM alpha_by_rank")
    assert ranks == [(1,)]
    assert _rows(path, "SELECT count(*) FROM sufficient_ranks") == [(0,)]
    assert _rows(path, "SELECT DISTINCT multiplicity FROM explanation_multiplicity") != []


def test_the_report_section_lets_you_hear_each_rank(built: Path) -> None:
    """The section's table is the view; each listenable signal is the clip's rank-r mask
    applied with numpy FFTs (up to 16-bit WAV rounding); its charts validate."""
    import io

    from sigwarehouse.analyses import multiplicity

    con = store.connect(built, read_only=True)
    try:
        section = multiplicity.run(con)
    finally:
        con.close()
    assert section.missing is None
    view = _rows(built, "SELECT count(*) FROM explanation_multiplicity WHERE n_sufficient > 1")
    assert section.tables[0].frame.height == view[0][0]
    for chart in section.charts:
        chart.chart.to_dict()
    masks = {
        clip_id: (file, [first, *further]) for clip_id, file, _c, first, further in _masks(built)
    }
    assert section.audio
    for audio in section.audio:
        clip_id = int(audio.caption.split("clip ")[1].split(":")[0])
        rank = int(audio.caption.split("rank ")[1].split(" ")[0])
        file, ranked = masks[clip_id]
        wave = sf.read(file, dtype="float32")[0]
        direct = np.fft.irfft(np.fft.rfft(wave.astype(np.float64)) * ranked[rank - 1], n=len(wave))
        heard = sf.read(io.BytesIO(audio.wav), dtype="float32")[0]
        np.testing.assert_allclose(heard, np.clip(direct, -1, 1), atol=1.5 / 32768)
