"""inaSpeechSegmenter 0.6.8's CNNs as python models (models/ina.py), checked independently.

The independent computations are in tests/ina_reference.py.

- Features: against the package's own SIDEKIT front end (`sidekit_mfcc.py` in the
  installed wheel, which needs only numpy and scipy).
- Patches: against a NumPy windowing and standardisation.
- Network: against a NumPy forward pass of the same file, on the same patches: within 1e-4.
- Clip probabilities: package features -> NumPy patches -> NumPy network -> mean over
  finite patches, against the adapter.
- Behaviour on recordings: each CNN's accuracy on its task's set (data/gender,
  data/speech-music: 24 real recordings and 6 rendered clips each) is the catalog's, and
  it gets every real recording right.
- Weights are data: an altered file is refused before use; a machine without the package
  is told the install command.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import h5py
import ina_reference as ref
import numpy as np
import pytest
import soundfile as sf
import torch

from sigwarehouse import catalog
from sigwarehouse.freqrex import renderings
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
def sidekit():
    return ref.load_sidekit(ina.package_dir())


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_read(CORPUS / rel) for rel in CLIPS]


def test_filterbank_is_sidekits(sidekit) -> None:
    np.testing.assert_array_equal(ina.mel_filterbank(), ref.package_filterbank(sidekit))


def test_log_mel_equals_the_packages_front_end(sidekit, clips) -> None:
    for x in [*clips, clips[0][:9000]]:  # the last one shorter than one patch: padded
        expected = ref.package_mspec(sidekit, x)
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
        expected = ref.np_patches(mspec[0].numpy(), n_mels)
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
    expected = ref.np_network(ina.package_dir() / name)(batch.numpy())
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
    forward = ref.np_network(ina.package_dir() / name)
    for x in [clips[0][:9000], clips[1]]:  # a short clip (padded), a clip with silence
        expected = ref.clip_probs(sidekit, forward, x, n_mels)
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
    with pytest.raises(ValueError, match=r"samples >= 400"):
        model(np.ones((1, 399), np.float32))


def _sparse(x: np.ndarray, ks=(1, 4, 16, 64)) -> np.ndarray:
    """The clip's k strongest rfft bins alone, for each k, built in float64."""
    spectrum = np.fft.rfft(x.astype(np.float64))
    order = np.argsort(-np.abs(spectrum))
    out = []
    for k in ks:
        mask = np.zeros(len(spectrum))
        mask[order[:k]] = 1.0
        out.append(np.fft.irfft(spectrum * mask, n=len(x)))
    return np.stack(out).astype(np.float32)


def test_16_bit_rounding_is_soundfiles(clips) -> None:
    """The adapter hears a signal as its 16-bit WAV (soundfile's writing, read back): a
    16-bit source is unchanged, a float signal becomes what its WAV round trip holds, and
    the model answers both the same."""
    for x in clips:
        np.testing.assert_array_equal(ina.pcm16(torch.from_numpy(x)).numpy(), x)
    rng = np.random.default_rng(0)
    levels = [rng.standard_normal((1, 16000)) * s for s in (1e-6, 1e-4, 1e-2, 0.3, 2.0)]
    signals = np.concatenate([_sparse(clips[0][:16000]), *levels]).astype(np.float32)
    np.testing.assert_array_equal(
        ina.pcm16(torch.from_numpy(signals)).numpy(), renderings.pcm16(signals, 16000)
    )
    model = ina.gender()
    sparse = _sparse(clips[0])
    np.testing.assert_array_equal(model(sparse), model(renderings.pcm16(sparse, 16000)))
    # below one step, soundfile rounds a sample down to 0 or -1 step: no silence yet
    faint = ina.pcm16(torch.from_numpy(sparse * 1e-6)).numpy() * 32768
    assert set(np.unique(faint)) == {-1.0, 0.0}


def test_a_wider_hop_scores_a_subset_of_the_patches(clips) -> None:
    dense, finite = ina.gender().patch_probs(clips[0][None])
    sparse, _ = ina.InaCNN(MODELS["gender"][0], ["female", "male"], 24, hop=8).patch_probs(
        clips[0][None]
    )
    assert finite.all() and sparse.shape[1] == len(range(0, dense.shape[1], 4))
    np.testing.assert_allclose(sparse.numpy(), dense[:, ::4].numpy(), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def shipped() -> catalog.Catalog:
    return catalog.load(REPO / "ingest")


@pytest.mark.parametrize(
    ("model", "task"), [("ina-gender", "gender"), ("ina-sm", "speech-music"),
                        ("ina-smn", "speech-music")]
)  # fmt: skip
def test_accuracy_on_the_real_recordings_is_the_catalogs(model, task, shipped) -> None:
    """Through the catalog's entry (label map included), every clip of data/<task>/eval:
    the first 12 of each label are real recordings (data/<task>/ATTRIBUTION.md)."""
    entry = shipped.models[model]
    clf = load_classifier(
        "python", entry.ref, shipped.tasks[task].labels, entry.label_map, name=model
    )
    files = sorted((REPO / "data" / task / "eval").glob("*/*.flac"))
    right, right_real = [], []
    for f in files:
        probs = clf(torch.from_numpy(_read(f))[None])[0].numpy()
        ok = bool(probs.max() > probs.min()) and clf.labels[int(probs.argmax())] == f.parent.name
        right.append(ok)
        if int(f.name[:2]) < 12:
            right_real.append(ok)
    assert (len(right), len(right_real)) == (30, 24)
    assert (entry.accuracy, entry.accuracy_n) == (round(sum(right) / len(right), 3), len(right))
    assert sum(right_real) == 24


def test_noise_maps_onto_music_in_the_catalog(shipped) -> None:
    """The shipped catalog's ina-smn: noise counts as the task's non-speech class; white
    noise is noise to the network and so music to the task."""
    cat = shipped
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


def test_without_h5py_the_error_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ImportError, match=r"h5py is not installed .*pip install 'h5py>=3'"):
        ina.gender()(np.ones((1, 16000), np.float32))


def test_a_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.hdf5"
    shutil.copy(ina.package_dir() / MODELS["gender"][0], path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "LSTM"
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ina.InaWeightsError, match="conv2d_1: LSTM is not a layer this port runs"):
        ina.read_network(path)


def test_batch_norm_is_folded_only_where_it_follows_a_linear_layer(tmp_path, clips) -> None:
    """The shipped files are Conv/Dense -> BN -> ReLU: every BN is folded into the layer
    before it. A file whose first Conv2D applies its own relu (Conv(relu) -> BN) must keep
    that BN as its own step; folding it would change the answer, which the NumPy forward
    pass of the same file would see."""
    name, n_mels = MODELS["gender"]
    assert "affine" not in [op for op, _ in ina.gender().network().steps]
    path = tmp_path / "conv_relu_bn.hdf5"
    shutil.copy(ina.package_dir() / name, path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        assert config["config"]["layers"][1]["class_name"] == "Conv2D"
        config["config"]["layers"][1]["config"]["activation"] = "relu"
        h5.attrs["model_config"] = json.dumps(config)
    net = ina.Network(ina.read_network(path))
    assert [op for op, _ in net.steps][:4] == ["conv", "relu", "affine", "relu"]
    p = ina.patches(ina.log_mel(torch.from_numpy(clips[0])[None]), n_mels)[0][::8].float()
    with torch.inference_mode():
        got = net(p).numpy()
    expected = ref.np_network(path)(p.numpy())
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(ina.gender().network()(p).numpy() - expected).max() > 1e-3  # not the same net
