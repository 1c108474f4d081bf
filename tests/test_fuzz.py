"""Fuzzed inputs (Hypothesis): whatever bytes or values come in, the parsers accept them
under their rules or refuse them cleanly, never with another exception.

- the clip policy (`audio.decode`) on generated WAV, FLAC, AIFF and W64 files and on
  those files with bytes flipped, cut off or inserted, the header most of all: a Clip
  of finite float32 samples in [-1, 1] at the task's rate, or `Rejected` with one of
  the policy's kinds;
- mask packing and band conversion (freqrex.spectral): round trips equal, wrong
  lengths and bands outside the mask refused with ValueError;
- freqrex parameters (`FreqrexParams.from_dict`, what `--param` and a stored
  `freqrex_params` row go through): valid parameters or TypeError/ValueError; the CLI
  turns `--param KEY=VALUE` into one error line;
- the catalog (`catalog.load`) on generated and mutated tasks.toml and dataset files:
  a Catalog or CatalogError naming the file.

Counts: a few hundred examples per property, a few thousand per run (seconds). Anything
a run finds is kept below as an @example, so it is checked on every run.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sigwarehouse import audio, catalog
from sigwarehouse.cli import app
from sigwarehouse.freqrex import spectral
from sigwarehouse.freqrex.params import FreqrexParams

pytestmark = pytest.mark.xdist_group("fuzz")

SR = 16000
KINDS = {"unreadable", "truncated", "empty", "too-short", "non-finite"}
FORMATS = {  # format -> subtypes libsndfile writes in it
    "WAV": ["PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE"],
    "FLAC": ["PCM_16", "PCM_24", "PCM_S8"],
    "AIFF": ["PCM_16", "PCM_24", "PCM_32", "PCM_S8", "FLOAT"],
    "W64": ["PCM_16", "PCM_24", "FLOAT", "DOUBLE"],
}
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def audio_files(draw) -> bytes:
    """A valid audio file: any of the formats, 1-3 channels, 0-2000 frames at 8-48 kHz."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    subtype = draw(st.sampled_from(FORMATS[fmt]))
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(0, 2000))
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).uniform(-1, 1, (frames, channels))
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@st.composite
def mutated(draw, files=audio_files()) -> bytes:
    """A valid file with a few edits: bytes overwritten (most often in the first 64, the
    header), a tail cut off, or bytes inserted."""
    data = bytearray(draw(files))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["header", "anywhere", "cut", "insert"]))
        if not data:
            break
        if edit in ("header", "anywhere"):
            end = min(len(data), 64) if edit == "header" else len(data)
            at = draw(st.integers(0, end - 1))
            data[at] = draw(st.integers(0, 255))
        elif edit == "cut":
            del data[draw(st.integers(0, len(data) - 1)) :]
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def check_decoded(data: bytes, min_duration_s: float = 0.0) -> None:
    """The property: decode returns a clean Clip or refuses with a policy kind."""
    try:
        clip = audio.decode(data, SR, min_duration_s)
    except audio.Rejected as exc:
        assert exc.kind in KINDS, str(exc)
        assert str(exc).strip() and "\n" not in str(exc)
        return
    x = clip.samples
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) > 0
    assert np.isfinite(x).all() and np.abs(x).max(initial=0) <= 1.0
    assert clip.native_frames > 0 and clip.native_sample_rate > 0
    assert clip.duration_s >= min_duration_s
    # the length is the native one resampled: frames * SR / native rate, to a sample
    assert abs(len(x) - clip.native_frames * SR / clip.native_sample_rate) <= 1


@MANY
@given(audio_files())
def test_every_generated_file_decodes_or_is_refused_for_its_length(data: bytes) -> None:
    check_decoded(data, min_duration_s=0.05)


def _wav_at_rate(rate: int) -> bytes:
    """A 100-frame WAV whose header's sample rate field says `rate`."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(100), SR, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    data[24:28] = rate.to_bytes(4, "little")
    return bytes(data)


@MANY
@given(mutated())
# Found by this test: a header byte turned the rate into ~1.2 GHz, and resampling from it
# designed a filter of billions of taps (a MemoryError, or minutes). Now refused.
@example(_wav_at_rate(0x48000000))
@example(_wav_at_rate(999_983))
@example(_wav_at_rate(0))
# Found by this test: a FLAC whose STREAMINFO declares 3.17e9 frames; reading it in one
# go allocated them first (a 23.6 GiB MemoryError). Now read a block at a time: truncated.
@example(
    b'fLaC\x00\x00\x00"\x10\x00\x10\x00\x00\x00\x0c\x00\x00\x0c\x01\xf4\x00\xf0\xbd\x00\x00'
    b"\x01)\xf2.\x1c\x02B\xdfV\xfe\xfa\xa9\x8c\xe0UL6\x84\x00\x00( \x00\x00\x00reference libFLAC"
    b" 1.4.3 20230623\x00\x00\x00\x00\xff\xf8d\x08\x00\x00\xe3\x03\x121\x04\xbb"
)
def test_mutated_files_decode_cleanly_or_are_rejected(data: bytes) -> None:
    check_decoded(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
@example(b"")
@example(b"RIFF\x00\x00\x00\x00WAVE")
@example(b"fLaC")
@example(b"FORM\x00\x00\x00\x04AIFF")
def test_arbitrary_bytes_are_rejected_or_decoded(data: bytes) -> None:
    check_decoded(data)


# --- mask packing and band conversion ---------------------------------------------------

# a mask of 0-300 variables from random bytes (a list of booleans draws far slower);
# runs of kept bins come from bytes 0x00 and 0xFF, which Hypothesis draws often
masks = st.tuples(st.integers(0, 300), st.binary(min_size=38, max_size=38)).map(
    lambda nb: np.unpackbits(np.frombuffer(nb[1], np.uint8))[: nb[0]].astype(bool)
)


@MANY
@given(masks)
def test_a_packed_mask_unpacks_to_itself_and_only_at_its_length(mask: np.ndarray) -> None:
    data = spectral.pack_mask(mask)
    assert len(data) == math.ceil(len(mask) / 8)
    assert np.array_equal(spectral.unpack_mask(data, len(mask)), mask)
    for wrong in (len(mask) + 8, len(mask) - 8):  # another byte length: refused
        if wrong >= 0:
            with pytest.raises(ValueError, match="do not pack"):
                spectral.unpack_mask(data, wrong)


@MANY
@given(masks)
def test_bands_are_the_kept_runs_and_convert_back(mask: np.ndarray) -> None:
    bands = spectral.mask_to_bands(mask)
    # independently: a band starts where a kept bin follows a dropped one (or the start)
    starts = [i for i in range(len(mask)) if mask[i] and (i == 0 or not mask[i - 1])]
    assert [s for s, _ in bands] == starts
    assert all(s < e and mask[s:e].all() for s, e in bands)
    assert sum(e - s for s, e in bands) == int(mask.sum())
    assert np.array_equal(spectral.bands_to_mask(bands, len(mask)), mask)


@MANY
@given(st.integers(0, 100), st.lists(st.tuples(st.integers(-5, 110), st.integers(-5, 110))))
def test_bands_outside_the_mask_are_refused(n: int, bands: list[tuple[int, int]]) -> None:
    inside = all(0 <= s <= e <= n for s, e in bands)
    if not inside:
        with pytest.raises(ValueError, match="outside"):
            spectral.bands_to_mask(bands, n)
        return
    expected = np.zeros(n, bool)
    for s, e in bands:
        expected[s:e] = True
    assert np.array_equal(spectral.bands_to_mask(bands, n), expected)


# --- freqrex parameters -------------------------------------------------------------------

FIELDS = sorted(FreqrexParams().to_dict())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=4))
def test_parameters_are_valid_or_refused_with_type_or_value_error(values: dict) -> None:
    merged = FreqrexParams().to_dict() | values
    try:
        params = FreqrexParams.from_dict(merged)
    except (TypeError, ValueError) as exc:
        assert str(exc)
        return
    # accepted: every value usable as the search uses it, and the identity stable
    assert params.hash() == FreqrexParams.from_dict(params.to_dict()).hash()
    for name in ("iterations", "n_parts", "min_band_bins", "max_depth", "batch_size"):
        assert isinstance(getattr(params, name), int) and getattr(params, name) >= 1


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FIELDS), st.text(max_size=12))
@example("iterations", "NaN")
@example("seed", "1e400")
def test_a_bad_param_on_the_command_line_is_one_error_line(key: str, raw: str) -> None:
    """`sigwh ingest --param KEY=VALUE` is parsed before the warehouse is opened: a value
    the parameters refuse ends the command with one line (here on a missing warehouse,
    which would be refused next)."""
    args = ["--warehouse", "/nonexistent/w.duckdb", "ingest", "--model", "m"]
    result = CliRunner().invoke(app, [*args, "--param", f"{key}={raw}", "--dry-run"])
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert result.output.count("error:") <= 1


# --- the catalog ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
TASKS = (REPO / "ingest" / "tasks.toml").read_text()
DATASET = (REPO / "ingest" / "datasets" / "spoof-eval.toml").read_text()


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


toml_scalars = (
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8)
)  # fmt: skip
task_tables = st.dictionaries(
    st.sampled_from(["labels", "sample_rate", "min_duration_s", "other"]),
    toml_scalars | st.lists(st.text(max_size=5), max_size=4),
    max_size=4,
)


# tmp_path is one folder for all of a test's examples: each example rewrites its files
ON_FILES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _load(tmp_path: Path, tasks: str, dataset: str | None = None) -> None:
    """catalog.load on a folder of these files: a Catalog or a CatalogError naming one."""
    (tmp_path / "datasets").mkdir(exist_ok=True)
    (tmp_path / "tasks.toml").write_text(tasks, errors="surrogateescape")
    target = tmp_path / "datasets" / "d.toml"
    target.unlink(missing_ok=True)
    if dataset is not None:
        target.write_text(dataset, errors="surrogateescape")
    try:
        cat = catalog.load(tmp_path)
    except catalog.CatalogError as exc:
        assert str(exc).startswith(str(tmp_path)), str(exc)
        return
    for entry in cat.tasks.values():
        assert entry.labels and entry.sample_rate > 0


@ON_FILES
@given(st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=5), task_tables,
                       max_size=3))  # fmt: skip
def test_generated_task_tables_load_or_are_refused_naming_the_file(tmp_path: Path, tasks) -> None:
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
        for name, table in tasks.items()
    )
    _load(tmp_path, text)


@ON_FILES
@given(
    st.sampled_from(["tasks", "dataset"]),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
)
def test_mutated_catalog_files_load_or_are_refused_naming_the_file(
    tmp_path: Path, which: str, edits: list[tuple[int, int]]
) -> None:
    text = bytearray((TASKS if which == "tasks" else DATASET).encode())
    for at, byte in edits:
        text[at % len(text)] = byte
    mutated_text = text.decode("utf-8", errors="surrogateescape")
    if which == "tasks":
        _load(tmp_path, mutated_text, DATASET)
    else:
        _load(tmp_path, TASKS, mutated_text)
