"""`sigwh asr --asr NAME`: transcripts and STOI of original and derived signals (section 5.4).

For every stored explanation (optionally one source model's, one dataset's), an offline
ASR model transcribes the clip ('original', once per clip) and the source model's
sufficient, complete and inverse signals, rebuilt from the stored audio and masks as in
docs/definitions.md. STOI (pystoi, the original clip as the clean reference) of each derived signal
is stored too (it does not depend on the ASR model, so it is computed once).

ASR models (`load_asr`), one interface (`Transcriber.transcribe(waves) -> texts`):
- `pocketsphinx` (the default): the English acoustic and language model that the
  pocketsphinx wheel ships; runs offline on any machine.
- a local directory holding a Hugging Face Whisper checkpoint (model and processor, as
  `save_pretrained` writes them), stored as `whisper:<absolute directory>`. English is
  requested when the checkpoint knows it; inputs longer than 30 s are cut by Whisper.

Each signal is peak-normalised before transcription (ASR is meant to be level-independent;
this keeps a quiet sufficient signal from being lost to 16-bit quantisation); a silent
signal gets '' without asking the model. STOI is computed on the signals as they are
(it is level-independent). Transcripts are stored as the model gave them.
Resumable like ingest: what is stored for the ASR model is skipped.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from pystoi import stoi

from sigwarehouse import store
from sigwarehouse.audio import load_clips, resample
from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs.skeleton import chunks, job_run
from sigwarehouse.signals import stored_signals
from sigwarehouse.store import write_path

ASR_RATE = 16000  # both backends' models hear 16 kHz
DEFAULT_ASR = "pocketsphinx"


class Transcriber(Protocol):
    name: str

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        """One transcript per 16 kHz float wave."""
        ...


def _peak_normalised(x: np.ndarray) -> np.ndarray | None:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return None if peak < 1e-9 else (x / peak * 0.9).astype(np.float32)


class PocketSphinx:
    """pocketsphinx's bundled US English model (no network, no downloads)."""

    name = DEFAULT_ASR

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # pocketsphinx: only for its own ASR

        self.decoder = Decoder(samprate=ASR_RATE, logfn=os.devnull)

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        texts = []
        for x in waves:
            y = _peak_normalised(x)
            if y is None:
                texts.append("")
                continue
            # pocketsphinx carries its noise estimate from one utterance to the next; starting
            # each signal from a fresh feature extractor makes a transcript independent of
            # what was transcribed before it (and equal to a new decoder's)
            self.decoder.reinit_feat()
            self.decoder.start_utt()
            self.decoder.process_raw((y * 32767).astype("<i2").tobytes(), full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            texts.append(hyp.hypstr.strip() if hyp is not None else "")
        return texts


class Whisper:
    """A Whisper checkpoint from a local directory (WhisperForConditionalGeneration)."""

    def __init__(self, directory: Path, device: str = "cpu", batch_size: int = 8) -> None:
        # transformers: only for Whisper
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.name = f"whisper:{directory.resolve()}"
        self.device, self.batch_size = device, batch_size
        self.processor = WhisperProcessor.from_pretrained(directory, local_files_only=True)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            directory,
            local_files_only=True,
            weights_only=True,  # weights are data, never code
        ).to(device)
        self.model.eval()
        known = getattr(self.model.generation_config, "lang_to_id", None) or {}
        self.extra = {"language": "en", "task": "transcribe"} if "<|en|>" in known else {}

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        import torch  # torch: only for Whisper (pocketsphinx runs without)

        texts = [""] * len(waves)  # a silent signal is not shown to the model
        audible = [(i, y) for i, x in enumerate(waves) if (y := _peak_normalised(x)) is not None]
        for start in range(0, len(audible), self.batch_size):
            part = audible[start : start + self.batch_size]
            features = self.processor(
                [y for _, y in part], sampling_rate=ASR_RATE, return_tensors="pt"
            ).input_features.to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(features, **self.extra)
            decoded = self.processor.batch_decode(ids, skip_special_tokens=True)
            for (i, _), text in zip(part, decoded, strict=True):
                texts[i] = text.strip()
        return texts


def asr_name(name: str) -> str:
    """The name transcripts are stored under; refuses what `load_asr` cannot load."""
    if name == DEFAULT_ASR:
        return name
    directory = Path(name)
    if not (directory / "config.json").is_file():
        raise SigwhError(
            f"--asr {name!r}: expected `pocketsphinx` or a directory holding a Whisper "
            "checkpoint (config.json, model weights and processor files from save_pretrained)"
        )
    return f"whisper:{directory.resolve()}"


def load_asr(name: str, device: str = "cpu") -> Transcriber:
    """The transcriber `name` names (see the module docstring)."""
    stored = asr_name(name)
    if stored == DEFAULT_ASR:
        return PocketSphinx()
    try:
        return Whisper(Path(name), device)
    except Exception as exc:
        raise SigwhError(f"--asr {name!r}: could not load a Whisper checkpoint: {exc}") from exc


# --- planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One explanation whose signals need a transcript or a STOI."""

    source_model: str
    clip_id: int
    params_hash: str
    n_bins: int
    params: str | None  # JSON of the explanation's parameters
    masks: dict[str, bytes | None]  # sufficient / complete packed masks
    todo: tuple[str, ...]  # kinds missing a transcript or STOI


@dataclass
class AsrPlan:
    asr: str
    original_clips: list[int]  # clips whose original transcript is missing
    items: list[Item]
    task: str | None = None

    def is_empty(self) -> bool:
        """True when every transcript and STOI is stored."""
        return not (self.items or self.original_clips)

    def describe(self) -> str:
        n = sum(len(i.todo) for i in self.items)
        return (
            f"ASR {self.asr}: {len(self.original_clips)} original clip(s) and {n} derived "
            f"signal(s) of {len(self.items)} explanation(s) to transcribe or score"
        )


_ITEMS_SQL = """
SELECT e.model, e.clip_id, e.params_hash, e.n_bins, p.params, e.sufficient_mask,
       e.complete_mask, k.kind,
       EXISTS (SELECT 1 FROM transcripts t WHERE t.asr = ? AND t.clip_id = e.clip_id
               AND t.source_model = e.model AND t.params_hash = e.params_hash
               AND t.kind = k.kind) AS has_text,
       EXISTS (SELECT 1 FROM signal_stoi s WHERE s.clip_id = e.clip_id
               AND s.source_model = e.model AND s.params_hash = e.params_hash
               AND s.kind = k.kind) AS has_stoi
FROM explanations e
JOIN clips c USING (clip_id)
LEFT JOIN freqrex_params p USING (params_hash)
CROSS JOIN (VALUES ('sufficient'), ('complete'), ('inverse')) AS k(kind)
WHERE (?::VARCHAR IS NULL OR e.model = ?) AND (?::VARCHAR IS NULL OR c.dataset = ?)
  AND (k.kind = 'sufficient' AND e.sufficient_mask IS NOT NULL
       OR k.kind <> 'sufficient' AND e.complete_mask IS NOT NULL)
ORDER BY e.clip_id, e.model, e.params_hash
"""


def plan_asr(
    con,
    asr: str,
    *,
    model: str | None = None,
    dataset: str | None = None,
    limit: int | None = None,
) -> AsrPlan:
    """What is missing for ASR model `asr` (a stored name, see `asr_name`).

    `limit` keeps the explanations of the first N clips (by clip id).
    """
    if (
        model is not None
        and not con.execute("SELECT count(*) FROM models WHERE model = ?", [model]).fetchall()[0][0]
    ):
        raise SigwhError(f"unknown model {model!r}")
    rows = con.execute(_ITEMS_SQL, [asr, model, model, dataset, dataset]).fetchall()
    if not rows:
        raise SigwhError(
            "no explanations to transcribe"
            + (f" for model {model}" if model else "")
            + (f" on dataset {dataset}" if dataset else "")
            + ": run `sigwh ingest` first"
        )
    clips = sorted({r[1] for r in rows})[: limit if limit is not None else None]
    keep = set(clips)
    grouped: dict[tuple, tuple[list, list[str]]] = {}
    for m, clip, ph, n_bins, params, suff, comp, kind, has_text, has_stoi in rows:
        if clip not in keep:
            continue
        entry = grouped.setdefault((m, clip, ph), ((n_bins, params, suff, comp), []))
        if not (has_text and has_stoi):
            entry[1].append(kind)
    items = [
        Item(m, clip, ph, info[0], info[1], {"sufficient": info[2], "complete": info[3]},
             tuple(kinds))
        for (m, clip, ph), (info, kinds) in grouped.items()
        if kinds
    ]  # fmt: skip
    done = {
        c
        for (c,) in con.execute(
            "SELECT clip_id FROM transcripts WHERE asr = ? AND kind = 'original'", [asr]
        ).fetchall()
    }
    return AsrPlan(asr, [c for c in clips if c not in done], items)


# --- the work ---------------------------------------------------------------------------


def stoi_of(reference: np.ndarray, signal: np.ndarray, rate: int) -> float | None:
    """pystoi's STOI of `signal` against the clean `reference`; None when it gives no number."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystoi warns about silent or very short signals
        value = float(stoi(reference.astype(np.float64), signal.astype(np.float64), rate))
    return value if np.isfinite(value) else None


def derived(samples: np.ndarray, item: Item) -> dict[str, np.ndarray]:
    """The item's sufficient, complete and inverse signals that exist (by kind)."""

    params = json.loads(item.params) if item.params else None
    return stored_signals(
        samples, item.n_bins, item.masks["sufficient"], item.masks["complete"], params
    )


@dataclass
class AsrSummary:
    run_id: str
    plan: AsrPlan
    counters: write_path.RunCounters = field(default_factory=write_path.RunCounters)
    transcribed: int = 0
    status: str = "running"

    def describe(self) -> str:
        return (
            f"run {self.run_id} {self.status}: {self.transcribed} transcript(s) by "
            f"{self.plan.asr} in {self.counters.total_seconds:.1f} s"
        )


# The columns of run_asr's rows, in the order it builds them.
TRANSCRIPT_COLUMNS = (
    "asr", "clip_id", "source_model", "params_hash", "kind", "text", "seconds", "run_id",
)  # fmt: skip
STOI_COLUMNS = ("source_model", "clip_id", "params_hash", "kind", "stoi", "run_id")


def run_asr(
    path: Path,
    plan: AsrPlan,
    *,
    transcriber: Transcriber | None = None,
    device: str = "cpu",
    clips_per_batch: int = 8,
    progress: Callable[[int], None] | None = None,
) -> AsrSummary:
    """Transcribe and score what the plan lists; each batch of clips is one transaction.

    `transcriber` defaults to `load_asr(plan.asr)` (pass one to reuse a loaded model; its
    name must be the plan's).
    """
    asr = transcriber or load_asr(plan.asr.removeprefix("whisper:"), device)
    if asr.name != plan.asr:
        raise SigwhError(f"the transcriber is {asr.name}, the plan is for {plan.asr}")
    with store.opened(path, read_only=True) as con:
        rate_of = dict(
            con.execute(
                "SELECT c.clip_id, t.sample_rate FROM clips c JOIN datasets d USING (dataset)"
                " JOIN tasks t ON t.task = d.task"
            ).fetchall()
        )
    by_clip: dict[int, list[Item]] = {}
    for it in plan.items:
        by_clip.setdefault(it.clip_id, []).append(it)
    originals = set(plan.original_clips)
    clips = sorted(originals | set(by_clip))
    counters = write_path.RunCounters()
    with job_run(
        path, lambda run_id: AsrSummary(run_id, plan, counters), counters,
        job="asr", model=None, task=None, dataset=None,
        params={"asr": plan.asr, "normalise": "peak 0.9 before ASR", "stoi": "pystoi"},
        params_hash=None, seed=None, device=device,
    ) as run:  # fmt: skip
        summary, run_id = run.summary, run.run_id
        for batch in chunks(clips, clips_per_batch):
            with store.opened(path, read_only=True) as con:
                samples = dict(zip(batch, load_clips(con, batch), strict=True))
            keys, waves, stoi_rows = [], [], []
            for clip in batch:
                x, rate = samples[clip], rate_of[clip]
                if clip in originals:
                    keys.append((clip, "", "", "original"))
                    waves.append(resample(x, rate, ASR_RATE))
                for it in by_clip.get(clip, []):
                    for kind, y in derived(x, it).items():
                        if kind not in it.todo:
                            continue
                        keys.append((clip, it.source_model, it.params_hash, kind))
                        waves.append(resample(y, rate, ASR_RATE))
                        stoi_rows.append(
                            (it.source_model, clip, it.params_hash, kind, stoi_of(x, y, rate),
                             run_id)
                        )  # fmt: skip
            start = time.perf_counter()
            texts = asr.transcribe(waves)
            each = (time.perf_counter() - start) / max(len(waves), 1)
            text_rows = [
                (plan.asr, clip, src, ph, kind, text, each, run_id)
                for (clip, src, ph, kind), text in zip(keys, texts, strict=True)
            ]
            summary.transcribed += len(text_rows)
            counters.clips_done += len(batch)
            counters.queries += len(waves)
            counters.model_seconds += time.perf_counter() - start
            run.clock()
            run.write(
                [
                    write_path.Rows("transcripts", TRANSCRIPT_COLUMNS, text_rows),
                    write_path.Rows("signal_stoi", STOI_COLUMNS, stoi_rows),
                ]
            )
            if progress:
                progress(len(batch))
    return summary
