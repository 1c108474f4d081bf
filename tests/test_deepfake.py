"""The deepfake jobs and analyses (section 5) on the shipped spoof zoo and clips.

One real warehouse is built for the module: two real and two fake evaluation clips,
models sp1 and sp5 ingested with light freqrex parameters, then `compose`,
`transfer-label` and `asr` driven through their typer commands. Checks recompute what
the jobs stored by independent paths (plain NumPy FFTs, a freshly loaded model, pystoi,
rapidfuzz, SQL over the raw tables) rather than trusting the job code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
import typer
from light_params import PARAMS
from typer.testing import CliRunner

from sigwarehouse import catalog, clips, store
from sigwarehouse.analyses import asr_fidelity, composition, label_transfer, spectral_entropy
from sigwarehouse.audio import decode_flac, load_clip
from sigwarehouse.cli import deepfake
from sigwarehouse.cli.common import set_warehouse
from sigwarehouse.freqrex.spectral import unpack_mask
from sigwarehouse.jobs import asr, compose, ingest
from sigwarehouse.models.loader import load_classifier
from sigwarehouse.signals import map_mask

# one worker builds this module's fixtures once (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("deepfake")

REPO = Path(__file__).resolve().parents[1]
TASK, DATASET, MODELS, PER_LABEL = "spoof", "spoof-eval", ("sp1", "sp5"), 2
ASR_CLIPS = 2  # clips whose signals pocketsphinx transcribes (about 0.4 s per signal)


def _app() -> typer.Typer:
    """The three commands as the lead registers them under `sigwh`."""
    app = typer.Typer()

    @app.callback()
    def main(wh: Path = typer.Option(..., "--warehouse")) -> None:
        set_warehouse(wh)

    app.command("compose")(deepfake.compose)
    app.command("transfer-label")(deepfake.transfer_label)
    app.command("asr")(deepfake.asr)
    return app


def _cli(path: Path, *args: str, expect: int = 0):
    result = CliRunner().invoke(_app(), ["--warehouse", str(path), *args])
    assert result.exit_code == expect, (result.output, result.exception)
    return result


def _counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(store.table_counts(con))
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deepfake")
    audio = root / "audio"
    for label in ("real", "fake"):
        (audio / label).mkdir(parents=True)
        for f in sorted((REPO / "data/corpus/spoof/eval" / label).glob("*.flac"))[:PER_LABEL]:
            shutil.copy(f, audio / label / f.name)
    path, _ = store.init(root / "warehouse.duckdb")
    with store.opened(path) as con:
        catalog.sync(con, REPO / "ingest")
        con.execute("UPDATE datasets SET root = ? WHERE dataset = ?", [str(audio), DATASET])
        clips.add_dataset(con, DATASET, store_audio=True, progress=False)
        con.execute(
            "DELETE FROM models WHERE task = ? AND model NOT IN (SELECT unnest(?::VARCHAR[]))",
            [TASK, list(MODELS)],
        )
    for model in MODELS:
        with store.opened(path, read_only=True) as con:
            plan = ingest.plan_ingest(con, model, PARAMS, dataset=DATASET)
        assert ingest.run_ingest(path, plan).status == "done"
    for model in MODELS:
        _cli(path, "compose", "--model", model, "--device", "cpu")
    # Each zoo model gives one class to silence (its sufficient masks of that class keep
    # nothing, so it has no composite of it): transfer the class that has one. sp1 (CNN)
    # gives silence "real", sp5 (Whisper encoder) "fake"; sp2-sp4 also say "real".
    _cli(path, "transfer-label", "--model", "sp1", "--from", "fake", "--to", "real")
    _cli(path, "transfer-label", "--model", "sp5", "--from", "real", "--to", "fake")
    _cli(path, "transfer-label", "--model", "sp5", "--from", "real", "--mask", "members")
    _cli(path, "asr", "--model", "sp1", "--limit", str(ASR_CLIPS))
    return path


def _model(path: Path, model: str):
    con = duckdb.connect(str(path), read_only=True)
    labels, kind, ref = con.execute(
        "SELECT t.labels, m.kind, m.ref FROM models m JOIN tasks t USING (task) WHERE model = ?",
        [model],
    ).fetchone()
    con.close()
    return load_classifier(kind, ref, list(labels))


def _top1(clf, x: np.ndarray) -> np.ndarray:
    return clf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])[0].numpy()


def test_composites_are_their_class_when_rerun(built: Path) -> None:
    """Rebuild each composite from its members with plain NumPy and ask a fresh model."""
    con = duckdb.connect(str(built), read_only=True)
    rows = con.execute(
        "SELECT model, class, members, candidates, n_samples, audio, top1 FROM composites"
        " WHERE n_composed > 0 ORDER BY model"
    ).fetchall()
    masks = {
        (m, c): (n, blob)
        for m, c, n, blob in con.execute(
            "SELECT model, clip_id, n_bins, sufficient_mask FROM explanations"
        ).fetchall()
    }
    audio = {c: load_clip(con, c) for (_, c) in masks}
    con.close()
    assert {r[0] for r in rows} == set(MODELS), "every model should have one composite"
    for model, cls, members, candidates, n, blob, top1 in rows:
        clf = _model(built, model)
        assert set(members) <= set(candidates) and top1 == cls
        assert members == [c for c in candidates if c in members]  # kept in the order tried
        signals = []
        for clip in members:
            n_bins, mask = masks[(model, clip)]
            x = audio[clip].astype(np.float64)
            s = np.fft.irfft(np.fft.rfft(x) * unpack_mask(mask, n_bins), n=len(x))
            signals.append(np.pad(s[:n], (0, max(0, n - len(s)))))
        # the greedy invariant: the mean of every prefix of κ keeps the class
        for k in range(1, len(signals) + 1):
            assert _top1(clf, np.mean(signals[:k], axis=0)).argmax() == cls
        stored, _ = decode_flac(blob)
        assert np.abs(stored - np.mean(signals, axis=0)).max() < 1e-5  # 24-bit FLAC
        assert _top1(clf, stored).argmax() == cls


def test_candidates_are_every_non_empty_sufficient_signal_of_the_class(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    got = con.execute(
        "SELECT model, class, list_sort(candidates), n_empty FROM composites ORDER BY ALL"
    ).fetchall()
    expected = con.execute(
        """
        SELECT model, orig_class,
               list_sort(coalesce(list(clip_id) FILTER (sufficient_size > 0), [])),
               count(*) FILTER (sufficient_size = 0)
        FROM explanations GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    con.close()
    assert [tuple(r) for r in got] == [tuple(r) for r in expected]
    assert any(r[3] > 0 for r in got), "the zoo models give one class to silence"


def test_the_composites_own_mask_is_sufficient_for_it(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    rows = con.execute(
        "SELECT model, class, n_samples, audio, sufficient_mask FROM composites"
        " WHERE sufficient_size > 0"
    ).fetchall()
    con.close()
    assert rows
    for model, cls, n, blob, mask in rows:
        x, _ = decode_flac(blob)
        kept = np.fft.irfft(np.fft.rfft(x.astype(np.float64)) * unpack_mask(mask, n // 2 + 1), n=n)
        assert _top1(_model(built, model), kept).argmax() == cls


def test_map_mask_matches_bins_by_frequency() -> None:
    rate, n_from = 16000, 16000  # 1 Hz per bin
    mask = np.zeros(n_from // 2 + 1, dtype=bool)
    mask[1000:1200] = True  # 1000–1199 Hz
    assert np.array_equal(map_mask(mask, n_from, n_from), mask)
    for n_to in (8000, 24001, 35334):
        mapped = map_mask(mask, n_from, n_to)
        hz = np.flatnonzero(mapped) * rate / n_to
        half = rate / n_to / 2  # half a target bin
        assert hz.min() >= 1000 - half - 1 and hz.max() <= 1199 + half + 1
        # every target bin whose frequency lies inside the band is kept
        inside = (np.arange(n_to // 2 + 1) * rate / n_to >= 1000) & (
            np.arange(n_to // 2 + 1) * rate / n_to <= 1199
        )
        assert mapped[inside].all()


def test_label_transfer_rows_and_view_match_a_hand_computation(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)  # stock DuckDB: the view is plain SQL
    rows = con.execute(
        "SELECT l.model, l.clip_id, l.signature_class, l.mask, l.orig_top1, l.top1,"
        " l.kept_bins, l.n_bins, k.n_samples, k.sufficient_mask, k.members_mask"
        " FROM label_transfers l JOIN composites k ON k.model = l.model"
        " AND k.class = l.signature_class AND k.params_hash = l.params_hash AND k.seed = l.seed"
    ).fetchall()
    originals = dict(
        ((m, c), t) for m, c, t in con.execute(
            "SELECT model, clip_id, top1 FROM original_probs").fetchall()
    )  # fmt: skip
    view = con.execute(
        "SELECT model, from_class, to_class, mask, n_clips, n_flipped, share_flipped"
        " FROM label_transfer ORDER BY ALL"
    ).fetchall()
    labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
    audio = {c: load_clip(con, c) for c in {r[1] for r in rows}}
    con.close()
    assert rows
    hand: dict[tuple, list[int]] = {}
    for model, clip, sig, mask_kind, before, after, kept, n_bins, n, suff, members in rows:
        # every clip of the dataset is explained here, so ingest's top-1 is independent
        assert before == originals[(model, clip)] != sig
        mask = unpack_mask(suff if mask_kind == "sufficient" else members, n // 2 + 1)
        x = audio[clip]
        bins = map_mask(mask, n, len(x))
        assert (kept, n_bins) == (int(bins.sum()), len(x) // 2 + 1)
        y = np.fft.irfft(np.fft.rfft(x.astype(np.float64)) * bins, n=len(x))
        assert _top1(_model(built, model), y).argmax() == after
        hand.setdefault((model, labels[sig], labels[before], mask_kind), []).append(after == sig)
    expected = [(*k, len(v), sum(v), sum(v) / len(v)) for k, v in sorted(hand.items())]
    assert [tuple(r) for r in view] == expected
    # all clips sp1 calls real were tried
    n_real = sum(1 for (m, _), t in originals.items() if m == "sp1" and t != 1)
    assert ("sp1", "fake", "real", "sufficient", n_real) in [r[:5] for r in view]


def test_compositionality_view_equals_the_raw_rows(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    view = con.execute(
        "SELECT task, dataset, model, class, n_candidates, n_composed, degree"
        " FROM compositionality ORDER BY model, class"
    ).fetchall()
    raw = con.execute(
        "SELECT model, class, len(candidates), len(members) FROM composites ORDER BY ALL"
    ).fetchall()
    labels = con.execute("SELECT labels FROM tasks WHERE task = ?", [TASK]).fetchone()[0]
    con.close()
    expected = sorted(
        (TASK, DATASET, m, labels[c], n, k, k / n if n else None) for m, c, n, k in raw
    )
    assert sorted(view, key=lambda r: (r[2], r[3])) == sorted(expected, key=lambda r: (r[2], r[3]))
    assert sum(1 for r in view if r[6] is not None) == len(MODELS)


def test_spectral_entropy_equals_a_direct_numpy_computation(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    frame = spectral_entropy.signal_entropies(con)
    masks = {
        (m, c): (n, s, k)
        for m, c, n, s, k in con.execute(
            "SELECT model, clip_id, n_bins, sufficient_mask, complete_mask FROM explanations"
        ).fetchall()
    }
    audio = {c: load_clip(con, c) for (_, c) in masks}
    con.close()
    assert frame.height == len(masks) + sum(
        (s is not None) + (k is not None) for _, s, k in masks.values()
    )
    for row in frame.iter_rows(named=True):
        x = audio[row["clip_id"]].astype(np.float64)
        n_bins, suff, comp = masks[(row["model"], row["clip_id"])]
        blob = {"original": None, "sufficient": suff, "complete": comp}[row["kind"]]
        if blob is not None:
            x = np.fft.irfft(np.fft.rfft(x) * unpack_mask(blob, n_bins), n=len(x))
        power = np.abs(np.fft.rfft(x)) ** 2
        if power.sum() < 1e-20:
            assert np.isnan(row["bits"])
            continue
        p = power / power.sum()
        p = p[p > 1e-300]
        assert row["bits"] == pytest.approx(-(p * np.log2(p)).sum(), rel=1e-6, abs=1e-6)


def test_mann_whitney_effect_size() -> None:
    high, low = [float(x) for x in range(10, 19)], [float(x) for x in range(1, 9)]
    row = spectral_entropy.mann_whitney(high, low)
    assert (row["U"], row["r_rank_biserial"]) == (72.0, 1.0)  # every high beats every low
    assert spectral_entropy.mann_whitney(low, high)["r_rank_biserial"] == -1.0
    assert spectral_entropy.mann_whitney([], low)["p"] is None


def test_stoi_and_levenshtein_at_identity(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    x = load_clip(con, 1)
    clip, kind, value, n_bins, suff, comp = con.execute(
        "SELECT s.clip_id, s.kind, s.stoi, e.n_bins, e.sufficient_mask, e.complete_mask"
        " FROM signal_stoi s JOIN explanations e ON e.model = s.source_model"
        " AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash"
        " WHERE s.stoi > 0 ORDER BY ALL LIMIT 1"
    ).fetchone()
    y0 = load_clip(con, clip).astype(np.float64)
    con.close()
    assert asr.stoi_of(x, x, 16000) == pytest.approx(1.0, abs=1e-6)
    from pystoi import stoi  # the stored value, recomputed directly

    mask = unpack_mask(suff if kind == "sufficient" else comp, n_bins)
    mask = ~mask if kind == "inverse" else mask
    y = np.fft.irfft(np.fft.rfft(y0) * mask, n=len(y0))
    assert value == pytest.approx(stoi(y0, y, 16000), abs=1e-4)


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [
        ("go forward ten meters", "go forward ten meters", 1.0),
        ("", "", 1.0),
        ("Hello, world!", "hello world", 1.0),  # after normalisation
        # indel: delete k, insert s, delete e, insert i, insert g = 5 of 6 + 7 characters
        # (1 − Levenshtein distance 3 / max length 7 would give 0.571)
        ("kitten", "sitting", 1 - 5 / 13),
        ("ab", "ba", 1 - 2 / 4),  # one deletion and one insertion (the max-length form: 0)
        ("yes", "", 0.0),
        ("go", "no go", 1 - 3 / 7),  # "no " inserted: 3 of 2 + 5 characters
    ],
)
def test_levenshtein_ratio_is_the_normalised_indel_similarity(a: str, b: str, ratio: float):
    assert asr_fidelity.lev_ratio(a, b) == pytest.approx(ratio)
    assert asr_fidelity.lev_ratio(b, a) == pytest.approx(ratio)


def test_pocketsphinx_transcripts_are_stored_and_reproducible(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    rows = con.execute(
        "SELECT clip_id, source_model, kind, text FROM transcripts ORDER BY ALL"
    ).fetchall()
    expected_signals = con.execute(
        "SELECT sum((sufficient_mask IS NOT NULL)::INT + 2 * (complete_mask IS NOT NULL)::INT)"
        " FROM explanations WHERE model = 'sp1' AND clip_id <= ?",
        [ASR_CLIPS],
    ).fetchone()[0]
    originals = {c: t for c, _, k, t in rows if k == "original"}
    audio = {c: load_clip(con, c) for c in originals}
    con.close()
    assert len(originals) == ASR_CLIPS and len(rows) == ASR_CLIPS + expected_signals
    assert all(originals.values()), "pocketsphinx heard nothing in real speech"
    # a transcript does not depend on what the decoder heard before it
    clips = sorted(originals, reverse=True)
    again = asr.PocketSphinx().transcribe([audio[c] for c in clips])
    assert again == [originals[c] for c in clips]


def test_jobs_are_idempotent_and_recorded_in_runs(built: Path) -> None:
    before = _counts(built)
    out = _cli(built, "compose", "--model", "sp1").output
    assert "nothing to do" in out
    out = _cli(built, "transfer-label", "--model", "sp1", "--from", "fake", "--to", "real").output
    assert "nothing to do" in out
    out = _cli(built, "asr", "--model", "sp1", "--limit", str(ASR_CLIPS)).output
    assert "nothing to do" in out
    after = _counts(built)
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }
    con = duckdb.connect(str(built), read_only=True)
    runs = con.execute(
        "SELECT job, model, status, params FROM runs WHERE job <> 'ingest' ORDER BY started_at"
    ).fetchall()
    con.close()
    jobs = [(j, m, s) for j, m, s, _ in runs]
    assert jobs == [
        ("compose", "sp1", "done"), ("compose", "sp5", "done"),
        ("transfer-label", "sp1", "done"), ("transfer-label", "sp5", "done"),
        ("transfer-label", "sp5", "done"), ("asr", None, "done"),
    ]  # fmt: skip
    assert json.loads(runs[-1][3])["asr"] == "pocketsphinx"
    assert after["runs"] == before["runs"]  # reruns that find nothing to do start no run


def test_commands_refuse_clearly(built: Path, tmp_path: Path) -> None:
    out = _cli(built, "transfer-label", "--model", "sp1", "--from", "real", expect=1).output
    assert "gives the class to silence" in out and "Traceback" not in out
    out = _cli(built, "transfer-label", "--model", "sp1", "--from", "bogus", expect=1).output
    assert "not a label" in out
    out = _cli(built, "asr", "--asr", str(tmp_path), expect=1).output
    assert "Whisper checkpoint" in out
    for command in ("compose", "transfer-label", "asr"):
        assert len(_cli(built, command, "--help").output) > 200


def test_analyses_report_the_stored_results(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    sections = [m.run(con) for m in (composition, spectral_entropy, label_transfer, asr_fidelity)]
    listen = composition.listenable(con)
    con.close()
    for section in sections:
        assert section.missing is None, section.key
        assert section.tables and section.charts, section.key
        for chart in section.charts:
            chart.chart.to_dict()  # validates against the Vega-Lite schema
    assert len(listen) == len(MODELS) and all(item.wav[:4] == b"RIFF" for item in listen)
    degrees = sections[0].tables[1].frame
    assert degrees.columns[-2:] == ["real", "fake"]  # task label order


def test_analyses_say_what_is_missing(wh_path: Path) -> None:
    con = duckdb.connect(str(wh_path), read_only=True)
    for module in (composition, spectral_entropy, label_transfer, asr_fidelity):
        section = module.run(con)
        assert section.missing and "sigwh" in section.missing, section.key
    con.close()


def _tiny_whisper(directory: Path) -> None:
    """A randomly initialised, 2-layer Whisper with a byte-level vocabulary (no download)."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    directory.mkdir()
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    eot = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        str(directory / "vocab.json"), str(directory / "merges.txt"),
        unk_token=eot, bos_token=eot, eos_token=eot, pad_token=eot,
    )  # fmt: skip
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|startoftranscript|>", "<|notimestamps|>"]}
    )
    start, end = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", eot])
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_target_positions=32, decoder_start_token_id=start,
        eos_token_id=end, pad_token_id=end, bos_token_id=end,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    gen = model.generation_config
    gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id = start, end, end
    gen.max_length = 8
    model.save_pretrained(directory)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(directory)


def test_a_local_whisper_checkpoint_works_through_the_same_interface(
    built: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "whisper-tiny-random"
    _tiny_whisper(checkpoint)
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built, copy)
    _cli(copy, "asr", "--asr", str(checkpoint), "--model", "sp5", "--limit", "1")
    con = duckdb.connect(str(copy), read_only=True)
    rows = con.execute(
        "SELECT asr, kind, text FROM transcripts WHERE asr LIKE 'whisper:%'"
    ).fetchall()
    con.close()
    assert rows and {r[0] for r in rows} == {f"whisper:{checkpoint.resolve()}"}
    assert "original" in {r[1] for r in rows}
    assert all(isinstance(r[2], str) and "<|" not in r[2] for r in rows)
    assert "nothing to do" in _cli(copy, "asr", "--asr", str(checkpoint), "--model", "sp5",
                                   "--limit", "1").output  # fmt: skip


def test_a_composite_made_from_other_clips_is_reported_stale(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built, copy)
    with store.opened(copy, read_only=True) as con:
        assert compose.plan_compose(con, "sp1").stale == []
    con = duckdb.connect(str(copy))
    con.execute(
        "DELETE FROM explanations WHERE model = 'sp1' AND clip_id = (SELECT min(clip_id)"
        " FROM explanations WHERE model = 'sp1' AND orig_class = 1)"
    )
    con.close()
    with store.opened(copy, read_only=True) as con:
        plan = compose.plan_compose(con, "sp1")
    assert plan.items == [] and plan.stale == [f"{DATASET} / fake"]
    assert "another --seed" in plan.describe()
