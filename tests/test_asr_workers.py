"""pocketsphinx in worker processes (jobs/transcribers.py, `run_asr(workers=N)`).

Real pocketsphinx on real speech (the speech and gender tasks' evaluation clips): the
transcripts with two workers equal those in one process, in order, and equal a fresh
pocketsphinx Decoder's, called directly on each signal; a silent signal gets ''. A signal
that fails and a job cut off by Ctrl-C leave no worker process behind, and the job stores
whole batches only.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
from sharing import copy_of
from small_warehouse import N_SAMPLES, RATE

from sigwarehouse import store
from sigwarehouse.audio import encode_flac
from sigwarehouse.errors import SigwhError
from sigwarehouse.jobs import asr
from sigwarehouse.jobs.transcribers import PocketSphinx, default_workers

REPO = Path(__file__).resolve().parents[1]
SPEECH = (
    sorted((REPO / "data/speech/eval/speech").glob("*.flac"))[:4]
    + sorted((REPO / "data/gender/eval/female").glob("*.flac"))[:2]
)


def _speech() -> list[np.ndarray]:
    waves = []
    for f in SPEECH:
        x, rate = sf.read(f, dtype="float32")
        assert rate == 16000 and x.ndim == 1
        waves.append(x)
    return waves


def _directly(x: np.ndarray) -> str:
    """A new pocketsphinx Decoder on `x` peak-normalised to 0.9 as 16-bit samples: what
    the transcriber is meant to give, computed without it."""
    from pocketsphinx import Decoder  # the library itself, as the reference

    peak = np.max(np.abs(x))
    if peak == 0:
        return ""
    decoder = Decoder(samprate=16000, logfn=os.devnull)
    decoder.start_utt()
    pcm = (x / peak * 0.9).astype(np.float32) * 32767
    decoder.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""


def _workers_alive() -> list:
    """This process's worker processes still running (multiprocessing's own children;
    the resource tracker is not one of them)."""
    return multiprocessing.active_children()


def test_two_workers_give_one_processs_transcripts_in_order() -> None:
    speech = _speech()
    # a silent signal in the middle, the same clip twice (after other clips, in another
    # worker, perhaps), a low-passed copy (a quieter, duller signal), then the others
    x = speech[0]
    spectrum = np.fft.rfft(x)
    spectrum[len(spectrum) // 8 :] = 0
    low = np.fft.irfft(spectrum, n=len(x)).astype(np.float32)
    waves = [x, speech[1], np.zeros(8000, np.float32), low, *speech[2:], x, speech[1]]
    with PocketSphinx(workers=1) as one:
        alone = one.timed(waves)
    with PocketSphinx(workers=2) as two:
        spread = two.timed(waves)
        assert len(_workers_alive()) == 2  # it did run in two worker processes
    assert not _workers_alive()
    texts = [t for t, _ in alone]
    assert [t for t, _ in spread] == texts
    assert texts == [_directly(w) for w in waves]
    assert texts[2] == ""
    assert sum(bool(t) for t in texts) >= len(waves) - 2, "pocketsphinx heard little speech"
    assert texts[-2:] == texts[:2]
    # each audible signal's own decoding time: the long clips take longer than silence
    assert all(s > 0 for _, s in spread) and spread[2][1] < min(s for _, s in spread[3:])


def test_a_failing_signal_stops_the_workers(tmp_path: Path) -> None:
    speech = _speech()
    with PocketSphinx(workers=2) as two:
        with pytest.raises(TypeError):
            two.timed([speech[0], "not a wave", speech[1], speech[2]])
        assert not _workers_alive()  # stopped at the failure, not only at close
        # the transcriber starts new workers for the next batch
        assert two.transcribe(speech[:2]) == [_directly(w) for w in speech[:2]]
    assert not _workers_alive()


def test_a_worker_killed_mid_batch_is_said_clearly_and_the_rest_stopped() -> None:
    noise = np.random.default_rng(1).normal(0, 0.1, 4 * 16000).astype(np.float32)
    with PocketSphinx(workers=2) as two:
        two.timed([noise[:1600]] * 2)  # both workers started

        def kill_one() -> None:
            os.kill(_workers_alive()[0].pid, signal.SIGKILL)  # as the out-of-memory killer

        threading.Timer(0.3, kill_one).start()
        with pytest.raises(SigwhError, match="ended abruptly.*--workers 1"):
            two.timed([noise] * 12)  # about a second a signal
        assert not _workers_alive()


def test_workers_are_refused_below_one_and_default_to_the_usable_cores() -> None:
    with pytest.raises(SigwhError, match="expected 1 or more"):
        PocketSphinx(workers=0)
    assert default_workers() == max(1, min(len(os.sched_getaffinity(0)), 8))


@pytest.fixture
def speaking(small_filled, tmp_path: Path) -> Path:
    """A copy of the small hand-made warehouse whose clips are 0.5 s of real speech (so
    its stored masks still fit), one clip per speech file in turn."""
    path = copy_of(small_filled[0], tmp_path)
    speech = _speech()
    con = duckdb.connect(str(path))
    try:
        clips = [c for (c,) in con.execute("SELECT clip_id FROM clips ORDER BY 1").fetchall()]
        for i, clip in enumerate(clips):
            x = speech[i % len(speech)]
            start = (i * 1600) % (len(x) - N_SAMPLES)
            blob = encode_flac(x[start : start + N_SAMPLES], RATE)
            con.execute("UPDATE clips SET audio = ? WHERE clip_id = ?", [blob, clip])
    finally:
        con.close()
    return path


def _stored(path: Path) -> tuple[list, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (
            con.execute(
                "SELECT clip_id, source_model, params_hash, kind, text, seconds FROM transcripts"
                " ORDER BY ALL"
            ).fetchall(),
            con.execute(
                "SELECT clip_id, source_model, params_hash, kind, stoi FROM signal_stoi"
                " ORDER BY ALL"
            ).fetchall(),
        )
    finally:
        con.close()


def _plan(path: Path, limit: int) -> asr.AsrPlan:
    with store.opened(path, read_only=True) as con:
        return asr.plan_asr(con, asr.DEFAULT_ASR, dataset="e", limit=limit)


def test_run_asr_stores_the_same_with_two_workers(speaking: Path, tmp_path: Path) -> None:
    other = copy_of(speaking, tmp_path / "two")
    plan = _plan(speaking, 3)
    assert asr.run_asr(speaking, plan, workers=1, clips_per_batch=2).status == "done"
    assert asr.run_asr(other, _plan(other, 3), workers=2, clips_per_batch=2).status == "done"
    assert not _workers_alive()
    (texts1, stoi1), (texts2, stoi2) = _stored(speaking), _stored(other)
    assert len(texts1) == plan.signals() and stoi1 == stoi2
    assert [r[:5] for r in texts1] == [r[:5] for r in texts2]
    assert any(r[4] for r in texts1), "pocketsphinx heard nothing in real speech"
    # seconds: each signal's own decoding time, measured where it was decoded
    assert all(r[5] > 0 for r in texts1 + texts2)


class CtrlCInSecondBatch(PocketSphinx):
    """pocketsphinx in two workers, and Ctrl-C 0.1 s into the second batch's decoding
    (it takes about a second), sent to the main thread as a terminal sends it."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.batches = 0

    def timed(self, waves: list[np.ndarray]) -> list[tuple[str, float]]:
        self.batches += 1
        if self.batches == 2:
            main = threading.main_thread().ident
            threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()
        return super().timed(waves)


def test_ctrl_c_in_a_batch_stores_whole_batches_and_leaves_no_worker(speaking: Path) -> None:
    plan = _plan(speaking, 6)
    interrupted = CtrlCInSecondBatch()
    with pytest.raises(KeyboardInterrupt):
        asr.run_asr(speaking, plan, transcriber=interrupted, clips_per_batch=2)
    assert interrupted.batches == 2
    assert not _workers_alive()  # stopped by the transcriber itself, before run_asr ended
    texts, stois = _stored(speaking)
    # exactly the first batch (its first two clips), every one of their signals
    first = sorted({it.clip_id for it in plan.items} | set(plan.original_clips))[:2]
    assert {r[0] for r in texts} == {r[0] for r in stois} == set(first)
    derived = sum(len(it.todo) for it in plan.items if it.clip_id in first)
    originals = sum(c in first for c in plan.original_clips)
    assert (len(stois), len(texts)) == (derived, derived + originals)
    con = duckdb.connect(str(speaking), read_only=True)
    ended = con.execute("SELECT status, clips_done FROM runs WHERE job = 'asr'").fetchall()
    con.close()
    assert ended == [("interrupted", 2)]


ENDS_AT_ONCE = """
import multiprocessing, os, sys
import numpy as np
from sigwarehouse.jobs.transcribers import PocketSphinx

if __name__ == "__main__":
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    PocketSphinx(workers=2).timed([noise, noise, noise])
    print(*[child.pid for child in multiprocessing.active_children()], flush=True)
    os._exit(130)  # as the Ctrl-C watcher ends a command past its grace: no clean-up
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has ended


def test_idle_workers_end_when_the_jobs_process_ends_at_once(tmp_path: Path) -> None:
    script, out = tmp_path / "ends_at_once.py", tmp_path / "pids.txt"
    script.write_text(ENDS_AT_ONCE)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with out.open("w") as stdout:  # a file, not a pipe: a worker left behind holds a pipe
        done = subprocess.run([sys.executable, str(script)], env=env, stdout=stdout, timeout=300)
    assert done.returncode == 130
    workers = [int(pid) for pid in out.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _running(pid)]
    for pid in left:  # a failing test must not leave them either
        os.kill(pid, signal.SIGTERM)
    assert not left, f"workers {left} outlived their job"
