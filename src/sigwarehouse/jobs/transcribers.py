"""The ASR models `sigwh asr` (jobs/asr.py) transcribes with, behind one small base class.

- `pocketsphinx` (the default): the English acoustic and language model that the
  pocketsphinx wheel ships; runs offline on any machine. pocketsphinx holds the GIL while
  it decodes, so threads do not help it: with `workers` > 1 the signals of a batch are
  spread over that many processes (one per usable CPU core by default), each holding a
  Decoder of its own made once, when it starts. A signal's transcript is the same
  whichever process decodes it, and after whatever it decoded before (each signal starts
  from a fresh feature extractor).
- a local directory holding a Hugging Face Whisper checkpoint (model and processor, as
  `save_pretrained` writes them), stored as `whisper:<absolute directory>`. English is
  requested when the checkpoint knows it; inputs longer than 30 s are cut by Whisper.

Each signal is peak-normalised before transcription (ASR is meant to be level-independent;
this keeps a quiet sufficient signal from being lost to 16-bit quantisation); a silent
signal gets '' without asking the model. This module imports only NumPy at its top, so a
pocketsphinx worker process starts without the warehouse's libraries.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from sigwarehouse.errors import SigwhError

ASR_RATE = 16000  # both backends' models hear 16 kHz
DEFAULT_ASR = "pocketsphinx"
# More pocketsphinx processes than this gain little on a batch (the demo's is ~120
# signals) and each holds its own language model (~50 MB).
MAX_WORKERS = 8


def default_workers() -> int:
    """pocketsphinx processes by default: one per CPU core this process may run on (its
    affinity, which a container or `taskset` narrows), at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


class Transcriber(ABC):
    """An ASR model: 16 kHz float waves in, one transcript each, in order.

    Use it in a `with` block (or call `close`): a transcriber may hold worker processes.
    """

    name: str

    @abstractmethod
    def timed(self, waves: list[np.ndarray]) -> list[tuple[str, float]]:
        """(transcript, seconds) per wave, in the waves' order; `seconds` is the time the
        model spent on that signal (see each transcriber)."""

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        """One transcript per 16 kHz float wave, in order."""
        return [text for text, _ in self.timed(waves)]

    def close(self) -> None:
        """Stop what the transcriber runs besides this process (nothing by default)."""
        return None

    def __enter__(self) -> Transcriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peak_normalised(x: np.ndarray) -> np.ndarray | None:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return None if peak < 1e-9 else (x / peak * 0.9).astype(np.float32)


def _new_decoder():
    from pocketsphinx import Decoder  # pocketsphinx: only for its own ASR

    return Decoder(samprate=ASR_RATE, logfn=os.devnull)


def _decode(decoder, x: np.ndarray) -> tuple[str, float]:
    """`x`'s transcript by `decoder` and the seconds this took (a silent signal is not
    shown to the decoder: '' in next to no time)."""
    start = time.perf_counter()
    y = _peak_normalised(x)
    if y is None:
        return "", time.perf_counter() - start
    # pocketsphinx carries its noise estimate from one utterance to the next; starting
    # each signal from a fresh feature extractor makes a transcript independent of
    # what was transcribed before it (and equal to a new decoder's)
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw((y * 32767).astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return (hyp.hypstr.strip() if hyp is not None else ""), time.perf_counter() - start


_worker_decoder = None  # a worker process's own Decoder, made by _start_worker


def _start_worker() -> None:
    """A pocketsphinx worker's start: its Decoder, made once for every signal it gets."""
    global _worker_decoder
    # Ctrl-C reaches every process of the terminal's group; the job's process alone acts
    # on it (it drops the signals not started and stops the workers), so a worker does
    # not die mid-signal with a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A job's process that ends at once (killed, or by the Ctrl-C watcher's exit after its
    # grace) cannot stop its workers, and an idle one would wait for work forever: each
    # ends itself when its parent is gone (after the signal it decodes, if any)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True).start()
    _worker_decoder = _new_decoder()


def _end_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _decode_in_worker(x: np.ndarray) -> tuple[str, float]:
    return _decode(_worker_decoder, x)


class PocketSphinx(Transcriber):
    """pocketsphinx's bundled US English model (no network, no downloads), decoding in
    this process (`workers` = 1) or in `workers` processes started at the first batch and
    stopped by `close`. `seconds` per signal is its own decoding time, in whichever
    process decoded it, so it does not depend on how many workers shared the batch."""

    name = DEFAULT_ASR

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise SigwhError(f"pocketsphinx workers: {workers}, expected 1 or more")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        # in this process only: with workers each process makes its own
        self._decoder = _new_decoder() if workers == 1 else None

    def timed(self, waves: list[np.ndarray]) -> list[tuple[str, float]]:
        if self._decoder is not None:
            return [_decode(self._decoder, x) for x in waves]
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")  # as the demo's workers: no fork
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=spawn, initializer=_start_worker
            )
        # the longest signals first, so that no worker is left with a long one while the
        # others idle at the end of the batch; the results keep the waves' order
        longest_first = sorted(range(len(waves)), key=lambda i: -len(waves[i]))
        try:
            running = {i: self._pool.submit(_decode_in_worker, waves[i]) for i in longest_first}
            return [running[i].result() for i in range(len(waves))]
        except BaseException as exc:
            self.close()  # Ctrl-C or a signal that failed: drop the batch, stop the workers
            if isinstance(exc, BrokenProcessPool):
                raise SigwhError(
                    "a pocketsphinx worker process ended abruptly (out of memory, or "
                    "pocketsphinx could not start): rerun with --workers 1 to decode in one "
                    "process and see why"
                ) from exc
            raise

    def close(self) -> None:
        """Stop the worker processes: signals not started are dropped, and each worker
        finishes the one it decodes (a second or so) and exits before this returns."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class Whisper(Transcriber):
    """A Whisper checkpoint from a local directory (WhisperForConditionalGeneration).
    `seconds` per signal is its batch's time over the batch's signals (it decodes them
    together)."""

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

    def timed(self, waves: list[np.ndarray]) -> list[tuple[str, float]]:
        import torch  # torch: only for Whisper (pocketsphinx runs without)

        found = [("", 0.0)] * len(waves)  # a silent signal is not shown to the model
        audible = [(i, y) for i, x in enumerate(waves) if (y := _peak_normalised(x)) is not None]
        for start in range(0, len(audible), self.batch_size):
            part = audible[start : start + self.batch_size]
            began = time.perf_counter()
            features = self.processor(
                [y for _, y in part], sampling_rate=ASR_RATE, return_tensors="pt"
            ).input_features.to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(features, **self.extra)
            decoded = self.processor.batch_decode(ids, skip_special_tokens=True)
            each = (time.perf_counter() - began) / len(part)
            for (i, _), text in zip(part, decoded, strict=True):
                found[i] = (text.strip(), each)
        return found


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


def load_asr(name: str, device: str = "cpu", workers: int = 1) -> Transcriber:
    """The transcriber `name` names (see the module docstring); `workers` is pocketsphinx's
    (Whisper runs in this process, on `device`)."""
    stored = asr_name(name)
    if stored == DEFAULT_ASR:
        return PocketSphinx(workers)
    try:
        return Whisper(Path(name), device)
    except Exception as exc:
        raise SigwhError(f"--asr {name!r}: could not load a Whisper checkpoint: {exc}") from exc
