"""Faults beyond SIGKILL, on real files: a full disk and I/O errors injected at random.

A full disk, two ways:
  - a file-size limit (RLIMIT_FSIZE, what `ulimit -f` sets) on a `sigwh export` in a
    child process: needs no privilege;
  - a small file system (a tmpfs this test mounts, filled but for a set room; skipped
    where mounting is not allowed) under `sigwh ingest` and `sigwh merge`.
Each ends with one line naming the warehouse, the cause and what to do; what was stored
before is intact and the file opens; once the room is back, the same command completes
to the rows of an uninterrupted run.

I/O errors: bench/faults_fiu.py runs seeded trials of a small ingest with libfiu failing
a share of the write, fsync and truncate calls (skipped without Debian's libfiu).

A damaged audio blob: bytes flipped in one clip's stored FLAC make a job_errors row for
that clip, and every other clip is explained as from the undamaged file.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from sharing import digest, sigwh

from sigwarehouse import store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import small_ingest  # noqa: E402 (bench/: the small ingest the fault scripts share)

pytestmark = pytest.mark.xdist_group("faults")

PER_LABEL = 2  # 4 clips, one batch each


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with the spoof clips and its first zoo model, nothing explained."""
    path = tmp_path_factory.mktemp("base") / "warehouse.duckdb"
    small_ingest.build(path, models=1)
    return path


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, the clips' audio stored in the file (about 4.7 MB)."""
    path = tmp_path_factory.mktemp("with-audio") / "warehouse.duckdb"
    small_ingest.build(path, models=1, store_audio=True)
    return path


def _ingest_args(base: Path) -> list[str]:
    with store.opened(base, read_only=True) as con:
        (model,) = con.execute("SELECT model FROM models WHERE task = 'spoof'").fetchall()[0]
    return ["ingest", "--model", model, "--per-label", str(PER_LABEL), "--clips-per-batch",
            "1", "--hold-s", "0", *small_ingest.LIGHT]  # fmt: skip


def _facts(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return small_ingest.facts(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def uninterrupted(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingest run without a fault: the rows every recovered run must reach."""
    path = shutil.copyfile(base, tmp_path_factory.mktemp("uninterrupted") / "w.duckdb")
    result = sigwh(path, *_ingest_args(base))
    assert result.exit_code == 0, result.output
    return path


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


# --- a file-size limit -----------------------------------------------------------------


def test_an_export_past_a_file_size_limit_says_so_and_a_rerun_completes(
    with_audio: Path, tmp_path: Path
) -> None:
    """`ulimit -f` of 1 MB: the clips' Parquet file (about 1.4 MB) cannot be written.
    sigwh ignores SIGXFSZ, so the limit is an error it explains, not a silent kill."""
    base = with_audio
    out = tmp_path / "export"
    before = digest(base.parent)
    limit = 1_000_000

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "sigwarehouse", "--warehouse", str(base), "export",
           "--parquet", str(out)]  # fmt: skip
    done = subprocess.run(cmd, preexec_fn=limited, capture_output=True, text=True, env=env)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    line = _one_error_line(done.stderr)
    assert f"{base}: a write to {out}/" in line and "File too large" in line
    assert "rerun the same command" in line and "restore" not in line
    assert not out.exists()  # the partial export is gone, so the rerun is not refused
    assert digest(base.parent) == before  # the warehouse is only read
    rerun = sigwh(base, "export", "--parquet", str(out))
    assert rerun.exit_code == 0, rerun.output
    con = duckdb.connect(str(base), read_only=True)
    try:
        for table, n in store.table_counts(con):
            parquet = str(out / f"{table}.parquet")
            assert con.execute("SELECT count(*) FROM read_parquet(?)", [parquet]).fetchall() == [
                (n,)
            ], table
    finally:
        con.close()


def test_an_ingest_whose_file_cannot_grow_keeps_its_batches_in_the_log(
    base: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """`ulimit -f` of 1 MB, below the 3 MB file but above the write-ahead log a few
    batches need: DuckDB cannot checkpoint into the file (silently, at close), keeps the
    committed batches in its log, and the job completes. As the README says: the rows are
    stored (the file opens without the limit and replays the log) and equal the
    uninterrupted run's."""
    path = shutil.copyfile(base, tmp_path / "warehouse.duckdb")
    size = path.stat().st_size
    limit = 1_000_000
    assert size > limit

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "sigwarehouse", "--warehouse", str(path), *_ingest_args(base)]
    done = subprocess.run(cmd, preexec_fn=limited, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.stat().st_size == size  # the file could not grow
    assert Path(f"{path}.wal").stat().st_size > 0  # the batches are in the log
    assert _facts(path) == _facts(uninterrupted)


# --- a small file system ---------------------------------------------------------------


@contextmanager
def small_disk(directory: Path) -> Iterator[Path]:
    """A 16 MB tmpfs mounted at `directory` (unmounted on leaving); skips the test where
    this process may not mount one."""
    directory.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()[:80]})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill_but(disk: Path, room: int) -> Path:
    """Fill the disk with one file until `room` bytes are left; returns that file (remove
    it to lift the limit)."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - room))
    return filler


def test_an_ingest_on_a_full_disk_keeps_its_batches_and_completes_once_there_is_room(
    base: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """5 MB of room: the first batches fit (DuckDB's first checkpoint takes most of it),
    a later commit finds the disk full."""
    args = _ingest_args(base)
    reference = _facts(uninterrupted)
    with small_disk(tmp_path / "disk") as disk:
        path = shutil.copyfile(base, disk / "warehouse.duckdb")
        filler = fill_but(disk, 5_000_000)
        failed = sigwh(path, *args)
        assert failed.exit_code == 1, failed.output
        line = _one_error_line(failed.output)
        assert f"{path}: a write to {path}.wal failed: No space left on device" in line
        assert "everything stored before is kept" in line and "rerun the same command" in line
        stored = _facts(path)  # the file opens
        n = len(stored["explanations"])
        assert 1 <= n < len(reference["explanations"]), "the disk should fill part way"
        explained = {(r[0], r[1]) for r in stored["explanations"]}
        for table in ("explanations", "original_probs", "signal_probs"):  # each batch whole
            assert stored[table] == [r for r in reference[table] if (r[0], r[1]) in explained]
        with store.opened(path, read_only=True) as con:
            assert con.execute("SELECT status, clips_done FROM runs").fetchall() == [("failed", n)]
        filler.unlink()  # the limit lifted
        rerun = sigwh(path, *args)
        assert rerun.exit_code == 0, rerun.output
        assert _facts(path) == reference
        info = sigwh(path, "info")
        assert info.exit_code == 0 and "warning" not in info.output, info.output


def test_a_merge_on_a_full_disk_changes_nothing_and_completes_once_there_is_room(
    base: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    args = _ingest_args(base)
    shard = tmp_path / "shard.duckdb"
    made = sigwh(base, *args, "--into", str(shard))
    assert made.exit_code == 0, made.output
    with small_disk(tmp_path / "disk") as disk:
        path = shutil.copyfile(base, disk / "warehouse.duckdb")
        before = _facts(path)
        filler = fill_but(disk, 16_000)
        failed = sigwh(path, "merge", str(shard))
        assert failed.exit_code == 1, failed.output
        line = _one_error_line(failed.output)
        assert f"{path}: a write" in line and "No space left on device" in line
        assert "rerun the same command" in line
        assert _facts(path) == before  # the merge is one transaction: none of it stored
        filler.unlink()
        rerun = sigwh(path, "merge", str(shard))
        assert rerun.exit_code == 0, rerun.output
        assert _facts(path) == _facts(uninterrupted)


# --- I/O errors at random points (libfiu) ------------------------------------------------

FIU_TRIALS = int(os.environ.get("SIGWH_FIU_TRIALS", "50"))


@pytest.mark.skipif(
    shutil.which("fiu-run") is None or not Path("/usr/lib/fiu/fiu_posix_preload.so").exists(),
    reason="libfiu is not installed (apt-get install fiu-utils libfiu0)",
)
def test_seeded_io_errors_fail_clearly_and_lose_nothing(tmp_path: Path) -> None:
    """bench/faults_fiu.py: each trial completes or ends with one error line; the file
    opens, `sigwh info` is consistent, no batch is half-written, and a clean rerun
    reaches the uninterrupted rows (its docstring lists the checks). SIGWH_FIU_TRIALS
    sets how many trials (50, as the closing note: bench/faults_fiu.py --trials 50)."""
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(REPO / "bench" / "faults_fiu.py"), "--trials", str(FIU_TRIALS),
           "--probability", "0.03", "--work", str(tmp_path / "w"), "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["trials"] == FIU_TRIALS
    assert figures["with_problems"] == [], [o for o in figures["each"] if o["problems"]]
    outcomes = figures["outcomes"]
    assert set(outcomes) <= {"completed", "failed"}, outcomes
    assert outcomes.get("failed", 0) >= 1, "no trial met an injected error: raise the probability"
    for trial in figures["each"]:
        if trial["outcome"] == "failed":
            assert "rerun the same command" in trial["error"], trial


# --- a damaged audio blob ----------------------------------------------------------------


def test_a_damaged_audio_blob_is_one_job_error_and_every_other_clip_is_explained(
    with_audio: Path, tmp_path: Path
) -> None:
    """Four bytes flipped in the middle of one clip's stored FLAC (the file itself stays
    whole: DuckDB's own checks pass). The ingest records that clip in job_errors, naming
    it, and stores for every other clip what an ingest of the undamaged file stores."""
    args = _ingest_args(with_audio)
    reference_path = shutil.copyfile(with_audio, tmp_path / "reference.duckdb")
    assert sigwh(reference_path, *args).exit_code == 0
    reference = _facts(reference_path)
    damaged_clip = min(r[1] for r in reference["explanations"])
    path = shutil.copyfile(with_audio, tmp_path / "damaged.duckdb")
    con = duckdb.connect(str(path))
    try:
        blob = bytearray(con.execute("SELECT audio FROM clips WHERE clip_id = ?",
                                     [damaged_clip]).fetchall()[0][0])  # fmt: skip
        middle = len(blob) // 2
        blob[middle : middle + 4] = bytes(b ^ 0xFF for b in blob[middle : middle + 4])
        con.execute("UPDATE clips SET audio = ? WHERE clip_id = ?", [bytes(blob), damaged_clip])
        clips_before = con.execute("SELECT * FROM clips ORDER BY clip_id").fetchall()
    finally:
        con.close()
    result = sigwh(path, *args)
    assert result.exit_code == 0, result.output
    stored = _facts(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        errors = con.execute("SELECT model, clip_id, stage, error FROM job_errors").fetchall()
        run = con.execute("SELECT status, clips_done, n_errors FROM runs").fetchall()
        clips_after = con.execute("SELECT * FROM clips ORDER BY clip_id").fetchall()
        assert small_ingest.tally_mismatches(con) == []
    finally:
        con.close()
    ((model, clip, stage, error),) = errors
    assert (clip, stage) == (damaged_clip, "load")
    assert f"clip {damaged_clip} (" in error and "stored in the warehouse is damaged" in error
    n_clips = len(reference["explanations"])
    assert run == [("done", n_clips - 1, 1)]
    for table in ("explanations", "original_probs", "signal_probs"):
        assert stored[table] == [r for r in reference[table] if r[1] != damaged_clip], table
    assert stored["model_probes"] == reference["model_probes"]
    assert clips_after == clips_before  # nothing else changes: the damaged blob included
