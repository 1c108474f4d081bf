"""The clip policy at its edges: exact boundaries, both kinds of non-finite sample, odd
lengths, and what each accepted file becomes (checked against plain numpy/scipy/soundfile).

These call `audio.decode` directly: they are fast enough to run for every mutant of
`make mutation` (tests/test_clips.py covers the same policy through `sigwh dataset add`).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from sigwarehouse import audio
from sigwarehouse.audio import Rejected

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

SR = 16000


def wav(x: np.ndarray, sr: int = SR, subtype: str = "FLOAT", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def rejection(data: bytes, min_duration_s: float = 0.0, sr: int = SR) -> str:
    with pytest.raises(Rejected) as info:
        audio.decode(data, sr, min_duration_s)
    return str(info.value)


def test_a_clip_exactly_min_duration_long_is_accepted_one_frame_less_is_not() -> None:
    x = np.full(8000, 0.1)  # 0.5 s at 16 kHz
    assert len(audio.decode(wav(x), SR, 0.5).samples) == 8000
    reason = rejection(wav(x[:-1]), 0.5)
    assert reason.startswith("too-short: 0.500 s < 0.5 s")  # 7999 frames = 0.4999375 s
    # the duration is the file's own, before resampling: 4000 frames at 8 kHz is 0.5 s
    assert len(audio.decode(wav(x[:4000], 8000), SR, 0.5).samples) == 8000
    assert rejection(wav(x[:3999], 8000), 0.5).startswith("too-short")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_non_finite_sample_is_rejected(bad: float) -> None:
    x = np.zeros(1000)
    x[[10, 500]] = bad
    assert rejection(wav(x)) == "non-finite: 2 NaN or Inf samples"


def test_a_file_with_no_samples_is_empty_not_short() -> None:
    assert rejection(wav(np.zeros(0)), 0.5) == "empty: no samples"


def test_unreadable_bytes_are_rejected_with_the_library_message() -> None:
    reason = rejection(b"RIFF....WAVEnot audio at all")
    assert reason == "unreadable: Error in WAV file. No 'data' chunk marker."  # libsndfile's
    assert audio.Rejected("too-short: 1 s").kind == "too-short"


@pytest.mark.parametrize(
    ("fmt", "declared"),
    [("WAV", 8000), ("WAVEX", 8000), ("AU", 8000), ("AIFF", 8008)],  # AIFF's SSND: +8 bytes
)
def test_a_file_cut_short_is_truncated(fmt: str, declared: int) -> None:
    """libsndfile reads what is left of these without an error: only its log says the
    audio chunk is shorter than the header declares."""
    data = wav(np.full(4000, 0.25), subtype="PCM_16", fmt=fmt)
    assert rejection(data[: len(data) - 1000]) == (
        f"truncated: header says {declared} bytes of audio, the file has {declared - 1000}"
    )


def test_a_wav_whose_sizes_a_streaming_writer_left_unknown_is_read_whole() -> None:
    """A writer that did not know the length ahead puts 0xFFFFFFFF in the RIFF and data
    sizes; libsndfile logs "data : 4294967295 (should be 8000)" and reads it all."""
    data = bytearray(wav(np.full(4000, 0.25), subtype="PCM_16"))
    at = data.find(b"data")
    data[4:8] = data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    assert len(audio.decode(bytes(data), SR).samples) == 4000


def test_a_wave64_file_cut_short_is_truncated() -> None:
    """Of Wave64 libsndfile logs only the file's size against the header's."""
    data = wav(np.full(4000, 0.25), subtype="PCM_16", fmt="W64")
    assert len(audio.decode(data, SR).samples) == 4000  # whole, it is accepted
    # longer than its header says ("riff : N (should be N + 1000)"): not truncated
    assert len(audio.decode(data + bytes(1000), SR).samples) >= 4000
    assert rejection(data[: len(data) - 1000]) == (
        f"truncated: header says {len(data)} bytes in all, the file has {len(data) - 1000}"
    )


def test_a_flac_cut_part_way_is_truncated_with_the_decoders_message() -> None:
    noise = np.random.default_rng(0).standard_normal(16000) * 0.1
    data = wav(noise, subtype="PCM_16", fmt="FLAC")
    assert rejection(data[: len(data) * 6 // 10]) == (
        "truncated: decoding failed part way (Error : flac decoder lost sync.)"  # libsndfile's
    )


_SOUNDFILE = sf.SoundFile  # the real one, which the tests below replace


class _Decoder:
    """soundfile.SoundFile as another libsndfile build may behave: `short` returns half
    the frames its header declares without an error; `failing` raises a plain
    RuntimeError (no libsndfile error_string) when opened."""

    def __init__(self, how: str, data):
        if how == "failing":
            raise RuntimeError("no decoder for this stream")
        self.real = _SOUNDFILE(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def read(self, **kwargs):
        return self.real.read(**kwargs)[: self.real.frames // 2]


@pytest.mark.parametrize(
    ("how", "reason"),
    [("short", "truncated: header says 8000 frames, decoded 4000"),
     ("failing", "unreadable: no decoder for this stream")],
)  # fmt: skip
def test_what_another_decoder_build_does_wrong_is_refused_too(monkeypatch, how, reason) -> None:
    data = wav(np.full(8000, 0.25))
    monkeypatch.setattr(audio.sf, "SoundFile", lambda file: _Decoder(how, file))
    assert rejection(data) == reason


@pytest.mark.parametrize("n", [7999, 8001, 1])
def test_odd_lengths_keep_every_sample(n: int) -> None:
    x = np.sin(np.arange(n) * 0.01) * 0.5
    clip = audio.decode(wav(x), SR)
    assert clip.samples.dtype == np.float32 and len(clip.samples) == n
    np.testing.assert_array_equal(clip.samples, x.astype(np.float32))
    assert (clip.native_frames, clip.native_sample_rate, clip.native_channels) == (n, SR, 1)
    assert clip.duration_s == n / SR


def test_channels_are_averaged_and_the_result_is_clipped_to_full_scale() -> None:
    left = np.linspace(-2.0, 2.0, 2001)
    right = np.linspace(-0.5, 0.5, 2001)
    clip = audio.decode(wav(np.stack([left, right], axis=1)), SR)
    stored = [c.astype(np.float32).astype(np.float64) for c in (left, right)]  # FLOAT wav
    expected = np.clip((stored[0] + stored[1]) / 2, -1.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(clip.samples, expected)
    assert clip.native_channels == 2 and clip.native_subtype == "FLOAT"
    assert clip.samples.max() == 1.0 and clip.samples.min() == -1.0


@pytest.mark.parametrize(("sr_in", "n"), [(8000, 4001), (44100, 22051), (22050, 11025)])
def test_other_rates_are_resampled_like_resample_poly_with_reduced_factors(
    sr_in: int, n: int
) -> None:
    rng = np.random.default_rng(sr_in)
    x = rng.uniform(-0.5, 0.5, n)
    clip = audio.decode(wav(x, sr_in), SR)
    up, down = SR // np.gcd(SR, sr_in), sr_in // np.gcd(SR, sr_in)
    expected = np.clip(resample_poly(x, up, down), -1, 1).astype(np.float32)
    np.testing.assert_allclose(clip.samples, expected, atol=1e-7)
    assert len(clip.samples) == int(np.ceil(n * up / down))
    assert clip.sample_rate == SR and clip.native_sample_rate == sr_in


def test_integer_formats_are_scaled_by_libsndfile() -> None:
    pcm = np.array([0, 16384, -32768, 32767, -1], dtype=np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, SR, format="WAV", subtype="PCM_16")
    clip = audio.decode(buf.getvalue(), SR)
    np.testing.assert_array_equal(clip.samples, (pcm / 32768).astype(np.float32))
    assert clip.native_subtype == "PCM_16"


def test_a_stereo_flac_blob_is_read_as_the_mean_of_its_channels() -> None:
    left, right = np.full(101, 0.5), np.full(101, -0.25)
    blob = wav(np.stack([left, right], axis=1), subtype="PCM_24", fmt="FLAC")
    back, sr = audio.decode_flac(blob)
    assert sr == SR and back.shape == (101,)
    np.testing.assert_allclose(back, 0.125, atol=2.0**-23)


def test_flac_blobs_round_trip_odd_lengths_within_one_24_bit_step() -> None:
    x = np.linspace(-1.2, 1.2, 3001)
    back, sr = audio.decode_flac(audio.encode_flac(x, SR))
    assert sr == SR and back.dtype == np.float32 and len(back) == 3001
    assert np.abs(back - np.clip(x, -1, 1)).max() <= 2.0**-23
    pcm, sr2 = sf.read(io.BytesIO(audio.wav_bytes(x, 8000)), dtype="int16")
    assert sr2 == 8000 and len(pcm) == 3001 and pcm.max() == 32767 and pcm.min() == -32768


# --- loading registered clips -----------------------------------------------------------


@pytest.fixture()
def registered(small_filled, tmp_path):
    """A copy of the small warehouse (clips 1.. with FLAC blobs) plus clips 901 and 902
    registered by file under a root in tmp_path (a 22.05 kHz WAV of odd length, and a
    16 kHz one), as `sigwh dataset add` records them."""
    import duckdb
    from sharing import copy_of

    path = copy_of(small_filled[0], tmp_path / "wh")
    root = tmp_path / "root"
    root.mkdir()
    files = {901: ("a/odd.wav", np.sin(np.arange(11025 + 1) * 0.05) * 0.5, 22050),
             902: ("b.wav", np.linspace(-0.5, 0.5, 1601), SR)}  # fmt: skip
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO datasets VALUES ('files', 'u', ?, 'folder', NULL, NULL)", [str(root)])
    for clip_id, (rel, x, rate) in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        data = wav(x, rate)
        (root / rel).write_bytes(data)
        con.execute(
            "INSERT INTO clips (clip_id, dataset, path, sha256, label, duration_s,"
            " native_sample_rate, native_channels, n_samples) VALUES (?, 'files', ?, ?, 'real',"
            " 1.0, ?, 1, 0)",
            [clip_id, rel, audio.sha256(data), rate],
        )
    con.close()
    return path, root, files


def test_registered_clips_load_from_blob_or_file_in_the_order_asked(registered, small_filled):
    import duckdb

    path, _root, files = registered
    con = duckdb.connect(str(path), read_only=True)
    got = audio.load_clips(con, [902, 1, 901, 1])
    blob = con.execute("SELECT audio FROM clips WHERE clip_id = 1").fetchone()[0]
    one = audio.load_clip(con, 1)
    (source,) = audio.clip_sources(con, [902])
    np.testing.assert_array_equal(audio.load_clip(con, source), files[902][1].astype(np.float32))
    con.close()
    want_blob, _ = sf.read(io.BytesIO(blob), dtype="float32")
    np.testing.assert_array_equal(got[1], want_blob)
    np.testing.assert_array_equal(got[3], want_blob)
    np.testing.assert_array_equal(one, want_blob)
    x901, x902 = files[901][1], files[902][1]
    stored901 = x901.astype(np.float32).astype(np.float64)  # what the FLOAT file holds
    np.testing.assert_allclose(got[2], resample_poly(stored901, 320, 441), atol=1e-6)
    np.testing.assert_array_equal(got[0], x902.astype(np.float32))
    assert len(got[2]) == int(np.ceil(len(x901) * 320 / 441))


def test_a_clip_that_moved_changed_or_is_unknown_says_what_to_run(registered):
    import duckdb

    path, root, _files = registered
    (root / "b.wav").write_bytes(wav(np.zeros(1601)))  # same name, other audio
    (root / "a" / "odd.wav").unlink()
    con = duckdb.connect(str(path), read_only=True)
    with pytest.raises(audio.ClipLoadError, match=r"clip 902: .*b\.wav changed since it was "
                       r"registered; run `sigwh dataset add files`"):  # fmt: skip
        audio.load_clip(con, 902)
    with pytest.raises(audio.ClipLoadError, match=r"clip 901: .*odd\.wav is missing; if dataset "
                       r"'files' moved, run `sigwh dataset relocate files NEWROOT`"):  # fmt: skip
        audio.load_clips(con, [1, 901])
    with pytest.raises(audio.ClipLoadError, match=r"no clip with id \[77\] in this warehouse"):
        audio.load_clips(con, [1, 77])
    with pytest.raises(audio.ClipLoadError, match=r"no clip with id \[71, 72, 73, 74, 75\] in"):
        audio.load_clips(con, [71, 72, 73, 74, 75, 76])  # the first five unknown ids
    con.close()


def test_a_blob_at_another_rate_is_refused(registered):
    import duckdb

    path, _root, _files = registered
    con = duckdb.connect(str(path))
    con.execute("UPDATE clips SET audio = ? WHERE clip_id = 1",
                [audio.encode_flac(np.zeros(800), 8000)])  # fmt: skip
    with pytest.raises(audio.ClipLoadError, match="clip 1: stored audio is at 8000 Hz, not 16000"):
        audio.load_clip(con, 1)
    con.close()


def test_a_registered_file_the_policy_now_refuses_names_the_clip_and_file(tmp_path) -> None:
    """The bytes match the hash registered, but decoding refuses them (as after a change
    of policy): the error names the clip, the file and the policy's reason."""
    data = b"RIFF....WAVEnot audio at all"
    (tmp_path / "bad.wav").write_bytes(data)
    src = audio.ClipSource(903, "files", "bad.wav", audio.sha256(data), str(tmp_path), SR, None)
    with pytest.raises(audio.ClipLoadError) as info:
        audio.load_source(src)
    assert str(info.value) == (
        f"clip 903: {tmp_path / 'bad.wav'}: unreadable: Error in WAV file. No 'data' chunk marker."
    )
