"""inaSpeechSegmenter 0.6.8's CNNs as python models (models/ina.py), checked independently.

- Features: against the package's own SIDEKIT front end (`sidekit_mfcc.py` in the
  installed wheel, which needs only numpy and scipy; loaded from its file, with the two
  numpy names it uses that numpy 2 removed put back for the duration).
- Patches: against a NumPy windowing and standardisation written here.
- Network: against a NumPy forward pass written here (h5py arrays, np.einsum over
  sliding windows, TensorFlow's 'same' pooling), on the same patches: within 1e-4.
- Clip probabilities: package features -> NumPy patches -> NumPy network -> mean over
  finite patches, against the adapter.
- Behaviour on recordings (see ASTERISK / POCKETSPHINX below): the gender CNN calls Allison
  Smith's Asterisk prompts female and the pocketsphinx test recordings male; the speech
  /music CNNs call data/speech's speech clips speech and the genre clips music.
- Weights are data: an altered file is refused before use; a machine without the package
  is told the install command.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from sigwarehouse import catalog
from sigwarehouse.models import ina
from sigwarehouse.models.factory import PythonModelError
from sigwarehouse.models.loader import load_classifier

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "corpus"
MODELS = {  # factory: (weight file, number of mel bands its network takes)
    "gender": ("keras_male_female_cnn.hdf5", 24),
    "speech_music": ("keras_speech_music_cnn.hdf5", 21),
    "speech_music_noise": ("keras_speech_music_noise_cnn.hdf5", 21),
}
# a human speech clip, a 1 s prompt starting with 4 frames of digital silence, a rendered
# music clip
CLIPS = ["spoof/eval/real/real_000.flac", "spoof/eval/real/real_007.flac",
         "genre/eval/rock/rock_000.flac"]  # fmt: skip


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    return x


@pytest.fixture(scope="module")
def sidekit(request):
    """The package's own front end, loaded from its file (the package's __init__ imports
    TensorFlow), with numpy.int and numpy.lib.pad (removed in numpy 2) put back."""
    path = ina.package_dir() / "sidekit_mfcc.py"
    spec = importlib.util.spec_from_file_location("_ina_sidekit_mfcc", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # it imports dct from a namespace SciPy deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        spec.loader.exec_module(module)
    mp = pytest.MonkeyPatch()
    mp.setattr(np, "int", int, raising=False)
    mp.setattr(np.lib, "pad", np.pad, raising=False)
    request.addfinalizer(mp.undo)
    return module


def _package_mspec(sidekit, x: np.ndarray) -> np.ndarray:
    """The package's features.py: SIDEKIT's log-mel, a short clip padded with its minimum."""
    with np.errstate(divide="ignore"):
        mspec = sidekit.mfcc(x, get_mspec=True)[3]
    if len(mspec) < 68:
        mspec = np.concatenate([mspec, np.full((68 - len(mspec), 24), mspec.min())])
    return mspec


def _np_patches(mspec: np.ndarray, n_mels: int) -> np.ndarray:
    """68-frame windows every 2 frames of the first n_mels bands, each standardised."""
    win = np.lib.stride_tricks.sliding_window_view(mspec[:, :n_mels], 68, axis=0)[::2]
    win = win.transpose(0, 2, 1).astype(np.float64)
    flat = win.reshape(len(win), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
    return flat.reshape(win.shape)


def _np_network(path: Path):
    """A NumPy forward pass of the Keras file: (n, 68, bands) -> (n, classes) softmax."""
    with h5py.File(path, "r") as h5:
        layers = json.loads(h5.attrs["model_config"])["config"]["layers"]
        weights = {}
        for layer in layers:
            name = layer["config"]["name"]
            if name in h5["model_weights"]:
                group = h5["model_weights"][name]
                weights[name] = {
                    w.decode().split("/")[-1].split(":")[0]: np.array(group[w.decode()])
                    for w in group.attrs["weight_names"]
                }

    def same_pad(h: np.ndarray, pool, stride) -> np.ndarray:
        pads = [(0, 0)]
        for axis in (1, 2):
            n = h.shape[axis]
            total = max((-(-n // stride[axis - 1]) - 1) * stride[axis - 1] + pool[axis - 1] - n, 0)
            pads.append((total // 2, total - total // 2))
        return np.pad(h, [*pads, (0, 0)], constant_values=-np.inf)

    def forward(x: np.ndarray) -> np.ndarray:
        h = x[..., None].astype(np.float64)  # NHWC, as Keras
        for layer in layers:
            kind, cfg = layer["class_name"], layer["config"]
            w = weights.get(cfg["name"], {})
            if kind == "Conv2D":
                kh, kw = w["kernel"].shape[:2]
                win = np.lib.stride_tricks.sliding_window_view(h, (kh, kw), axis=(1, 2))
                h = np.einsum("nhwcij,ijco->nhwo", win, w["kernel"], optimize=True) + w["bias"]
            elif kind == "BatchNormalization":
                std = np.sqrt(w["moving_variance"] + cfg["epsilon"])
                h = (h - w["moving_mean"]) / std * w["gamma"] + w["beta"]
            elif kind == "MaxPooling2D":
                pool, stride = cfg["pool_size"], cfg["strides"]
                if cfg["padding"] == "same":
                    h = same_pad(h, pool, stride)
                win = np.lib.stride_tricks.sliding_window_view(h, pool, axis=(1, 2))
                h = win[:, :: stride[0], :: stride[1]].max(axis=(-2, -1))
            elif kind == "Flatten":
                h = h.reshape(len(h), -1)
            elif kind == "Dense":
                h = h @ w["kernel"] + w["bias"]
            if cfg.get("activation") == "relu":
                h = np.maximum(h, 0.0)
            elif cfg.get("activation") == "softmax":
                e = np.exp(h - h.max(axis=1, keepdims=True))
                h = e / e.sum(axis=1, keepdims=True)
        return h

    return forward


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_read(CORPUS / rel) for rel in CLIPS]


def test_filterbank_is_sidekits(sidekit) -> None:
    bank, _ = sidekit.trfbank(16000, 512, 100, 8000, 0, 24)
    np.testing.assert_array_equal(ina.mel_filterbank(), bank)


def test_log_mel_equals_the_packages_front_end(sidekit, clips) -> None:
    for x in [*clips, clips[0][:9000]]:  # the last one shorter than one patch: padded
        expected = _package_mspec(sidekit, x)
        got = ina.log_mel(torch.from_numpy(x)[None])[0].numpy()
        assert got.shape == expected.shape
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(np.isfinite(got), finite)  # digital silence: -inf
        # the package rounds its power spectrum to float32: ~1e-4 in the log of faint bands
        np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=1e-3)


def test_patches_equal_a_numpy_windowing(clips) -> None:
    for n_mels in (21, 24):
        mspec = ina.log_mel(torch.from_numpy(clips[1])[None])
        got = ina.patches(mspec, n_mels)[0].numpy()
        expected = _np_patches(mspec[0].numpy(), n_mels)
        assert got.shape == expected.shape == ((98 - 68) // 2 + 1, 68, n_mels)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
        ok = np.isfinite(expected)
        assert ok.all(axis=(1, 2)).sum() == len(got) - 2  # the first 4 frames are silent
        np.testing.assert_allclose(got[ok], expected[ok], rtol=0, atol=1e-9)


@pytest.mark.parametrize("factory", sorted(MODELS))
def test_network_equals_a_numpy_forward_pass(factory, clips) -> None:
    name, n_mels = MODELS[factory]
    model = getattr(ina, factory)()
    batch = []
    for x in clips:
        p = ina.patches(ina.log_mel(torch.from_numpy(x)[None]), n_mels)[0]
        p = p[torch.isfinite(p).all(dim=2).all(dim=1)]
        batch.append(p[::6])
    batch = torch.cat(batch).float()
    assert len(batch) >= 30
    expected = _np_network(ina.package_dir() / name)(batch.numpy())
    with torch.inference_mode():
        got = model.network()(batch).numpy()
    assert got.shape == (len(batch), len(model.labels))
    assert np.abs(got - expected).max() < 1e-4
    # not a trivial agreement: the patches get different answers
    assert len(set(expected.argmax(axis=1))) >= 2


@pytest.mark.parametrize("factory", sorted(MODELS))
def test_clip_probabilities_equal_the_independent_pipeline(factory, sidekit, clips) -> None:
    """Package features, NumPy patches and network, the mean over finite patches."""
    name, n_mels = MODELS[factory]
    model = getattr(ina, factory)()
    forward = _np_network(ina.package_dir() / name)
    for x in [clips[0][:9000], clips[1]]:  # a short clip (padded), a clip with silence
        p = _np_patches(_package_mspec(sidekit, x), n_mels)
        p = p[np.isfinite(p).all(axis=(1, 2))]
        expected = forward(p).mean(axis=0)
        np.testing.assert_allclose(model(x[None])[0], expected, rtol=0, atol=1e-3)


def test_a_clip_answers_the_same_alone_and_in_a_batch(clips) -> None:
    model = ina.gender()
    n = 16000
    batch = np.stack([c[:n] for c in clips] + [np.zeros(n, np.float32)])
    together = model(batch)
    alone = np.concatenate([model(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-6)
    # digital silence throughout: no finite patch, no evidence
    np.testing.assert_array_equal(together[-1], [0.5, 0.5])


# Allison Smith's Asterisk prompts (female; data/corpus/ATTRIBUTION.md) and the
# pocketsphinx test recordings (goforward, cards, a LibriVox reading), which the manifest
# names. Their speakers' gender is not documented; their median F0 is 96-120 Hz (an
# autocorrelation pitch estimate, notes in ingest/models/gender.toml), a male voice's range.
def _real(prefix: str) -> list[Path]:
    rows = csv.DictReader((CORPUS / "manifest.csv").open())
    return [
        CORPUS / r["path"]
        for r in rows
        if r["task"] == "spoof" and r["label"] == "real" and r["source"].startswith(prefix)
    ]


def _top1(model, paths: list[Path]) -> list[str]:
    return [model.labels[int(np.argmax(model(_read(p)[None])[0]))] for p in paths]


def test_gender_calls_asterisk_female_and_pocketsphinx_male() -> None:
    model = ina.gender()
    allison, pocketsphinx = _real("asterisk:"), _real("pocketsphinx:")
    assert (len(allison), len(pocketsphinx)) == (15, 10)
    # one prompt ("at", real_001) is padded to 1 s with digital silence inside every
    # patch: no evidence, a tie, which is not counted as right
    probs = [model(_read(p)[None])[0] for p in allison]
    assert sum(p[0] > p[1] for p in probs) == 14
    assert sum(p[0] == p[1] for p in probs) == 1
    assert _top1(model, pocketsphinx) == ["male"] * 10


def test_speech_music_calls_speech_and_music() -> None:
    speech = sorted((REPO / "data/speech/eval/speech").glob("*.flac"))
    music = sorted((CORPUS / "genre/eval").glob("*/*.flac"))[::5]
    assert (len(speech), len(music)) == (25, 10)
    for factory in ("speech_music", "speech_music_noise"):
        model = getattr(ina, factory)()
        assert _top1(model, speech) == ["speech"] * 25
        assert _top1(model, music) == ["music"] * 10


def test_noise_maps_onto_music_in_the_catalog() -> None:
    """The shipped catalog's ina-smn: noise counts as the task's non-speech class; white
    noise is noise to the network and so music to the task."""
    cat = catalog.load(REPO / "ingest")
    entry = cat.models["ina-smn"]
    assert cat.mappings["ina-smn"] == {"speech": "speech", "music": "music", "noise": "music"}
    clf = load_classifier(
        "python", entry.ref, cat.tasks["speech-music"].labels, entry.label_map, name="ina-smn"
    )
    noise = _read(REPO / "data/speech/eval/non-speech/noise_000.flac")
    raw = ina.speech_music_noise()(noise[None])[0]
    assert np.argmax(raw) == 2
    task = clf(torch.from_numpy(noise)[None])[0].numpy()
    np.testing.assert_allclose(task, [raw[0], raw[1] + raw[2]], atol=1e-6)


def test_an_altered_weight_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    name = MODELS["gender"][0]
    copy = tmp_path / "inaSpeechSegmenter"
    copy.mkdir()
    data = bytearray((ina.package_dir() / name).read_bytes())
    assert hashlib.sha256(data).hexdigest() == ina.WEIGHTS[name]
    data[-1] ^= 1
    (copy / name).write_bytes(bytes(data))
    monkeypatch.setattr(ina, "package_dir", lambda: copy)
    model = ina.gender()
    with pytest.raises(ina.InaWeightsError, match=rf"{name} has SHA-256 .*pip install --no-deps"):
        model(np.zeros((1, 16000), np.float32))
    (copy / name).unlink()
    with pytest.raises(ina.InaWeightsError, match=rf"{name} is missing: reinstall"):
        ina.gender()(np.zeros((1, 16000), np.float32))


def test_without_the_package_the_error_names_the_install_command(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "inaSpeechSegmenter" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install --no-deps 'inaSpeechSegmenter==0\.6\.8'"):
        ina.speech_music()
    with pytest.raises(PythonModelError, match=r"model ina-sm .*make setup"):
        load_classifier("python", "sigwarehouse.models.ina:speech_music", ["speech", "music"],
                        name="ina-sm")  # fmt: skip


def test_a_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.hdf5"
    shutil.copy(ina.package_dir() / MODELS["gender"][0], path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "LSTM"
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ina.InaWeightsError, match="conv2d_1: LSTM is not a layer this port runs"):
        ina.read_network(path)
