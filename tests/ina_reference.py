"""Independent computations that tests/test_ina.py and bench/bench_ina.py check the
inaSpeechSegmenter port (src/sigwarehouse/models/ina.py) against:

- the package's own SIDEKIT front end (`sidekit_mfcc.py` in the installed wheel, which
  needs only numpy and scipy), loaded from its file because the package's __init__
  imports TensorFlow, and run with the two numpy names it uses that numpy 2 removed
  (`numpy.int`, `numpy.lib.pad`) put back for the duration of each call;
- the package's patching (segmenter.py's `_get_patches`, which imports TensorFlow too)
  redone in NumPy;
- a NumPy forward pass of a Keras `.hdf5` (h5py arrays, np.einsum over sliding windows,
  TensorFlow's 'same' pooling).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np

PATCH, STEP, N_MELS = 68, 2, 24


def load_sidekit(package_dir: Path) -> ModuleType:
    path = package_dir / "sidekit_mfcc.py"
    spec = importlib.util.spec_from_file_location("_ina_sidekit_mfcc", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # it imports dct from a namespace SciPy deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def numpy1_names() -> Iterator[None]:
    """numpy.int and numpy.lib.pad, as SIDEKIT's code expects them, for the duration."""
    added = [(owner, name) for owner, name in ((np, "int"), (np.lib, "pad"))
             if not hasattr(owner, name)]  # fmt: skip
    np.int = int
    np.lib.pad = np.pad
    try:
        yield
    finally:
        for owner, name in added:
            delattr(owner, name)


def package_filterbank(sidekit: ModuleType) -> np.ndarray:
    with numpy1_names():
        return sidekit.trfbank(16000, 512, 100, 8000, 0, N_MELS)[0]


def package_mspec(sidekit: ModuleType, x: np.ndarray) -> np.ndarray:
    """The package's features.py: SIDEKIT's log-mel, a short clip padded with its minimum."""
    with numpy1_names(), np.errstate(divide="ignore"):
        mspec = sidekit.mfcc(x, get_mspec=True)[3]
    if len(mspec) < PATCH:
        mspec = np.concatenate([mspec, np.full((PATCH - len(mspec), N_MELS), mspec.min())])
    return mspec


def np_patches(mspec: np.ndarray, n_mels: int) -> np.ndarray:
    """PATCH-frame windows every STEP frames of the first n_mels bands, each standardised
    by its mean and population standard deviation (float64)."""
    win = np.lib.stride_tricks.sliding_window_view(mspec[:, :n_mels], PATCH, axis=0)[::STEP]
    win = win.transpose(0, 2, 1).astype(np.float64)
    flat = win.reshape(len(win), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
    return flat.reshape(win.shape)


def np_network(path: Path) -> Callable[[np.ndarray], np.ndarray]:
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
            n, k, s = h.shape[axis], pool[axis - 1], stride[axis - 1]
            total = max((-(-n // s) - 1) * s + k - n, 0)
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


def clip_probs(sidekit: ModuleType, forward, x: np.ndarray, n_mels: int) -> np.ndarray:
    """Package features, NumPy patches and network: the mean over the finite patches."""
    p = np_patches(package_mspec(sidekit, x), n_mels)
    p = p[np.isfinite(p).all(axis=(1, 2))]
    return forward(p).mean(axis=0)
