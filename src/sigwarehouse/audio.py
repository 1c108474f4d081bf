"""Audio files under the clip policy, FLAC blobs, and loading registered clips.

The clip policy (what `sigwh dataset add` accepts and what every model then hears):

- Files: .wav, .flac, .ogg, read with soundfile (libsndfile).
- Integer formats (8/16/24/32-bit PCM) become float in [-1, 1] by libsndfile's scaling
  (e.g. PCM_16 / 32768; unsigned 8-bit is centred first). Float files keep their values.
- Several channels are averaged to mono.
- Another sample rate is resampled to the task's rate with `scipy.signal.resample_poly`
  (up/down factors reduced by their gcd; its default Kaiser-windowed FIR).
- The result is clipped to [-1, 1] and returned as float32. Clipping matters only for
  float files louder than full scale and for the small overshoot of resampling near full
  scale; it keeps the stored FLAC blob (24-bit) and the decoded file equal to within
  one 24-bit step (2^-23).
- Rejected, with a reason whose first word is its kind: `unreadable` (libsndfile cannot
  open it, or its header gives a sample rate outside 1 kHz to 384 kHz), `truncated` (the
  data ends before its header says, or decoding fails part way), `empty` (no samples),
  `too-short` (native duration under the task's min_duration_s), `non-finite` (NaN or
  Inf samples). Labels are checked by clips.py.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import duckdb
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from sigwarehouse.errors import SigwhError

EXTENSIONS = (".wav", ".flac", ".ogg")
BLOB_SUBTYPE = "PCM_24"

# libsndfile logs e.g. "data : 32000 (should be 15978)" when the audio chunk of a WAV
# (AIFF: "SSND", AU: "Data Size") is cut short; it then silently reads what is there, so
# the log is the only sign of truncation. Of a Wave64 file it logs only the whole file's
# size against the header's ("riff : 32104 (should be 16052)").
_SHORT_CHUNK = re.compile(
    r"^\s*(data|SSND|Data Size|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE
)
# The native sample rates a file may give. A damaged header can give any 32-bit rate,
# and resampling from, say, 1.2 GHz designs a filter of billions of taps (minutes, or a
# MemoryError: found by tests/test_fuzz.py); 384 kHz is the highest rate audio uses.
NATIVE_RATES = (1_000, 384_000)
READ_BLOCK_FRAMES = 1 << 16  # frames decoded at a time (see _read_all)
# What streaming writers put in a size field when the length was not yet known.
_UNKNOWN_SIZE = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class Rejected(SigwhError):
    """A file the clip policy refuses; str() is the reason, starting with its kind."""

    @property
    def kind(self) -> str:
        return str(self).split(":", 1)[0]


class ClipLoadError(SigwhError):
    """A registered clip that cannot be loaded now (file moved, changed or unreadable)."""


@dataclass(frozen=True)
class Clip:
    """A decoded clip: mono float32 samples at `sample_rate`, and what the file was."""

    samples: np.ndarray
    sample_rate: int
    native_sample_rate: int
    native_channels: int
    native_subtype: str | None
    native_frames: int

    @property
    def duration_s(self) -> float:
        return self.native_frames / self.native_sample_rate


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """x (float, 1-D) resampled from sr_in to sr_out with a polyphase filter."""
    if sr_in == sr_out:
        return x
    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g)


def decode(data: bytes, sample_rate: int, min_duration_s: float = 0.0) -> Clip:
    """Decode an audio file's bytes under the clip policy.

    Returns a Clip at `sample_rate`. Raises Rejected (unreadable, truncated, empty,
    too-short, non-finite) for what the policy refuses.
    """
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise Rejected(f"unreadable: {_sf_message(exc)}") from exc
    with f:
        frames, native_sr, channels = f.frames, f.samplerate, f.channels
        cut = _SHORT_CHUNK.search(f.extra_info)
        if cut and int(cut[3]) < int(cut[2]) and int(cut[2]) not in _UNKNOWN_SIZE:
            of = "in all" if cut[1] == "riff" else "of audio"
            raise Rejected(f"truncated: header says {cut[2]} bytes {of}, the file has {cut[3]}")
        if not NATIVE_RATES[0] <= native_sr <= NATIVE_RATES[1]:
            raise Rejected(
                f"unreadable: the header gives a sample rate of {native_sr} Hz, outside "
                f"{NATIVE_RATES[0]}..{NATIVE_RATES[1]} Hz"
            )
        if frames == 0:
            raise Rejected("empty: no samples")
        if frames / native_sr < min_duration_s:
            raise Rejected(f"too-short: {frames / native_sr:.3f} s < {min_duration_s:g} s")
        try:
            x = _read_all(f)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise Rejected(f"truncated: decoding failed part way ({_sf_message(exc)})") from exc
        subtype = f.subtype
    if len(x) < frames:
        raise Rejected(f"truncated: header says {frames} frames, decoded {len(x)}")
    if not np.isfinite(x).all():
        raise Rejected(f"non-finite: {int((~np.isfinite(x)).sum())} NaN or Inf samples")
    mono = x.mean(axis=1)
    out = np.clip(resample(mono, native_sr, sample_rate), -1.0, 1.0).astype(np.float32)
    return Clip(out, sample_rate, native_sr, channels, subtype, frames)


def _read_all(f: sf.SoundFile) -> np.ndarray:
    """Every frame the file holds, (frames, channels) float64, read a block at a time.

    Not f.read() in one go: that allocates the frames the header declares first, and a
    damaged header can declare billions (a 23 GiB MemoryError for a 100-byte FLAC: found
    by tests/test_fuzz.py). What is there is read; decode compares it with the header."""
    blocks = []
    while True:
        block = f.read(frames=READ_BLOCK_FRAMES, dtype="float64", always_2d=True)
        blocks.append(block)
        if len(block) < READ_BLOCK_FRAMES:
            return np.concatenate(blocks)


def _sf_message(exc: Exception) -> str:
    return str(getattr(exc, "error_string", None) or exc).strip()


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono float clip as FLAC bytes (24-bit; values clipped to [-1, 1])."""
    buf = io.BytesIO()
    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    sf.write(buf, x, sample_rate, format="FLAC", subtype=BLOB_SUBTYPE)
    return buf.getvalue()


def decode_flac(blob: bytes) -> tuple[np.ndarray, int]:
    """FLAC bytes (from encode_flac) as (float32 mono samples, sample rate)."""
    x, sr = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], sr


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono signal as 16-bit PCM WAV bytes (values clipped to [-1, 1])."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --- loading registered clips -----------------------------------------------------------


@dataclass(frozen=True)
class ClipSource:
    """Where a registered clip's audio is: its blob, or its file under the dataset root."""

    clip_id: int
    dataset: str
    path: str
    sha256: str
    root: str
    sample_rate: int
    audio: bytes | None

    @property
    def file(self) -> Path:
        return Path(self.root) / self.path


_SOURCE_SQL = """
SELECT c.clip_id, c.dataset, c.path, c.sha256, d.root, t.sample_rate, c.audio
FROM clips c JOIN datasets d USING (dataset) JOIN tasks t ON t.task = d.task
WHERE c.clip_id IN (SELECT unnest(?::INTEGER[]))
"""


def clip_sources(con: duckdb.DuckDBPyConnection, clip_ids: list[int]) -> list[ClipSource]:
    """The ClipSource of each id, in the order given. Raises ClipLoadError for unknown ids."""
    ids = [int(i) for i in clip_ids]
    rows = {r[0]: ClipSource(*r) for r in con.execute(_SOURCE_SQL, [ids]).fetchall()}
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise ClipLoadError(f"no clip with id {unknown[:5]} in this warehouse")
    return [rows[i] for i in ids]


def load_source(src: ClipSource) -> np.ndarray:
    """The clip's samples (float32, mono, task rate): the blob if stored, else the file.

    A file is checked against the hash it was registered with. Raises ClipLoadError when
    the file is missing, changed or no longer readable.
    """
    if src.audio is not None:
        try:
            x, sr = decode_flac(src.audio)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            # The file's own checks pass (DuckDB checksums its blocks), so the blob was
            # damaged before it was stored or by a program writing the file: this clip only.
            raise ClipLoadError(
                f"clip {src.clip_id} ({src.dataset}/{src.path}): its audio stored in the "
                f"warehouse is damaged ({_sf_message(exc)}); the other clips are not "
                "affected: restore the warehouse from a backup, or register the clip again"
            ) from exc
        if sr != src.sample_rate:
            raise ClipLoadError(
                f"clip {src.clip_id}: stored audio is at {sr} Hz, not {src.sample_rate}"
            )
        return x
    file = src.file
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise ClipLoadError(
            f"clip {src.clip_id}: {file} is missing; if dataset {src.dataset!r} moved, run "
            f"`sigwh dataset relocate {src.dataset} NEWROOT`"
        ) from exc
    if sha256(data) != src.sha256:
        raise ClipLoadError(
            f"clip {src.clip_id}: {file} changed since it was registered; run "
            f"`sigwh dataset add {src.dataset}` to register the new version"
        )
    try:
        return decode(data, src.sample_rate).samples
    except Rejected as exc:  # same bytes as when it was accepted: only a policy change can
        raise ClipLoadError(f"clip {src.clip_id}: {file}: {exc}") from exc


def load_clip(con: duckdb.DuckDBPyConnection, clip: int | ClipSource) -> np.ndarray:
    """One registered clip's samples (float32, mono, at its task's rate); see load_source."""
    src = clip if isinstance(clip, ClipSource) else clip_sources(con, [clip])[0]
    return load_source(src)


def load_clips(con: duckdb.DuckDBPyConnection, clip_ids: list[int]) -> list[np.ndarray]:
    """The samples of many clips (one query), in the order of `clip_ids`; see load_source."""
    return [load_source(src) for src in clip_sources(con, clip_ids)]
