"""`sigwh asr --asr NAME`: transcripts and STOI of original and derived signals (section 5.4).

For every stored explanation (optionally one source model's, one dataset's), an offline
ASR model transcribes the clip ('original', once per clip) and the source model's
sufficient, complete and inverse signals, rebuilt from the stored audio and masks as in
docs/definitions.md. STOI (pystoi, the original clip as the clean reference) of each derived signal
is stored too (it does not depend on the ASR model, so it is computed once).

ASR models (jobs/transcribers.py): `pocketsphinx` (the default, offline; its signals
spread over one process per usable CPU core unless `workers` says otherwise) or a local
Whisper checkpoint. Each signal is peak-normalised before transcription and a silent
signal gets '' without asking the model; STOI is computed on the signals as they are (it
is level-independent). Transcripts are stored as the model gave them, each with the
seconds the model spent on that signal alone.
Resumable like ingest: what is stored for the ASR model is skipped.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pystoi import stoi

from sigwarehouse import store
from sigwarehouse.audio import load_clips, resample
from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs.skeleton import chunks, job_run
from sigwarehouse.jobs.transcribers import (
    ASR_RATE,
    DEFAULT_ASR,
    PocketSphinx,
    Transcriber,
    Whisper,
    asr_name,
    default_workers,
    load_asr,
)
from sigwarehouse.signals import stored_signals
from sigwarehouse.store import write_path

# The transcribers live in jobs/transcribers.py (a worker process imports only that); the
# job's callers and tests take them from here too.
__all__ = [
    "DEFAULT_ASR", "PocketSphinx", "Whisper", "asr_name", "load_asr",
    "AsrPlan", "plan_asr", "run_asr", "stoi_of", "TRANSCRIPT_COLUMNS", "STOI_COLUMNS",
    "SIGNALS_PER_WORKER", "default_workers",
]  # fmt: skip


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

    def signals(self) -> int:
        """The signals to transcribe: each missing original and derived signal."""
        return len(self.original_clips) + sum(len(i.todo) for i in self.items)

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


# Starting a pocketsphinx worker (a Python process and its own model, 1-2 s) costs about
# as much as decoding a few signals: by default each worker gets at least this many (on 8
# signals, 2 workers took 10.8 s and 1 process 8.3 s; on 122, 42.4 s and 70.4 s).
SIGNALS_PER_WORKER = 8

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
    workers: int | None = None,
    clips_per_batch: int = 8,
    progress: Callable[[int], None] | None = None,
) -> AsrSummary:
    """Transcribe and score what the plan lists; each batch of clips is one transaction.

    `transcriber` defaults to `load_asr(plan.asr)` (pass one to reuse a loaded model; its
    name must be the plan's; the caller closes it). `workers`: the processes pocketsphinx
    decodes in (None: one per usable CPU core, up to 8, and at most one per
    SIGNALS_PER_WORKER signals of the plan; 1: in this process). They start with the first
    batch and are stopped before this returns or raises: Ctrl-C or a failure loses the
    batch in flight, never part of it.
    """
    if workers is not None and workers < 1:
        raise SigwhError(f"workers: {workers}, expected 1 or more")
    if transcriber is not None:
        if transcriber.name != plan.asr:
            raise SigwhError(f"the transcriber is {transcriber.name}, the plan is for {plan.asr}")
        held = nullcontext(transcriber)
    else:
        if workers is None:
            workers = min(default_workers(), plan.signals() // SIGNALS_PER_WORKER)
        n = max(1, min(workers, plan.signals()))
        held = load_asr(plan.asr.removeprefix("whisper:"), device, workers=n)
    with held as asr:
        return _carry_out(path, plan, asr, device, clips_per_batch, progress)


def _carry_out(
    path: Path,
    plan: AsrPlan,
    asr: Transcriber,
    device: str,
    clips_per_batch: int,
    progress: Callable[[int], None] | None,
) -> AsrSummary:
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
            # `seconds` of a row: the model's time on that signal alone (in the worker that
            # decoded it), not the batch's wall time, which shrinks with more workers
            found = asr.timed(waves)
            text_rows = [
                (plan.asr, clip, src, ph, kind, text, seconds, run_id)
                for (clip, src, ph, kind), (text, seconds) in zip(keys, found, strict=True)
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
