"""inaSpeechSegmenter 0.6.8's three CNNs as `kind = "python"` models, run in plain torch.

Factories (`ref = "sigwarehouse.models.ina:gender"`, `:speech_music`,
`:speech_music_noise`) return classifiers at 16 kHz with the package's own labels:

- `gender`: ["female", "male"] (keras_male_female_cnn.hdf5, 24 mel bands);
- `speech_music`: ["speech", "music"] (keras_speech_music_cnn.hdf5, the first 21 bands;
  the engine of the package's ICASSP 2018 paper and its MIREX 2018 entry);
- `speech_music_noise`: ["speech", "music", "noise"] (keras_speech_music_noise_cnn.hdf5,
  21 bands); a catalog maps its labels onto a task's with `label_map`.

The weights are read from the installed wheel (the `ina` extra; `make setup` installs
it without its requirements, TensorFlow among them, which nothing here imports): the
Keras 2 `.hdf5` files are opened with h5py, which reads arrays and the JSON model
configuration only (no pickle, no Keras), after each file's SHA-256 is checked against
WEIGHTS below. The configuration is interpreted with an allow-list of the layers these
networks use (Conv2D, BatchNormalization, Activation, MaxPooling2D, Flatten, Dense,
Dropout), so a file of any other shape is refused rather than guessed at.

Input, as the package's `features.py` gets it: ffmpeg decodes every medium into a 16-bit
WAV, so the waves are rounded to 16 bits first (`pcm16`, rounding as soundfile writes
16-bit WAV: a signal and its own 16-bit WAV round trip get the same answer). That is also
the package's floor: the features are logs of band energies standardised per patch, so
blind to level: a faint signal is heard as clearly as a loud one down to the 16-bit
step, and one step of difference per sample can move a faint signal's answer a long way
(bench/bench_ina.py measures it on sparse signals).

Features, as the package's `features.py` and `sidekit_mfcc.py` compute them: 25 ms
frames (400 samples) every 10 ms (160), no padding at either end; per frame a
pre-emphasis x[n] - 0.97 x[n-1] (the first sample against itself), a symmetric Hann
window, a 512-point power spectrum, 24 triangular mel filters from 100 Hz to 8 kHz
(SIDEKIT's, built by `mel_filterbank`), and the natural log. A clip shorter than one
patch (68 frames, 0.69 s) is padded, as the package pads it, with frames equal to the
clip's smallest log-mel value. Patches are 68 frames (0.68 s) every 2 frames (20 ms),
each standardised by its own mean and (population) standard deviation.

How a clip becomes probabilities (the package segments instead): the mean of the
per-patch softmax outputs over every distinct patch of the clip. The package's
segmenter differs in three ways that have no place in a clip classifier: it repeats the
first and last patch's outputs to align them with the clip's ends (here each patch counts
once), it smooths the outputs over time with a Viterbi decoder, and it runs the
speech/music networks only on frames its energy detector finds active and the gender
network only on speech (here every patch is scored). A patch that is not finite after
standardisation (a frame of digital silence makes log(0); a constant patch has no
deviation) is left out of the mean: the package gives it 0.5 per class, which its
Viterbi smoothing then overrides with its neighbours' label. A clip with no finite
patch (all-zero signals among them) gets the uniform distribution.

Features are computed in float64 (the package rounds its power spectrum to float32:
the difference is far below the port's tolerance) and the network runs in float32. A
clip's patches are one forward pass of their own, so a clip's answer does not depend on
the other clips of its batch. tests/test_ina.py checks the features against the
package's own SIDEKIT code and the network against a NumPy forward pass of the same
file; bench/bench_ina.py prints the figures.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
PACKAGE = "inaSpeechSegmenter"
VERSION = "0.6.8"
INSTALL = (
    f"install inaSpeechSegmenter's weights with `pip install 'h5py>=3' && "
    f"pip install --no-deps '{PACKAGE}=={VERSION}'` (or `make setup`)"
)

# The package's weight files and their SHA-256 (inaSpeechSegmenter 0.6.8's wheel).
WEIGHTS = {
    "keras_male_female_cnn.hdf5": (
        "2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f"
    ),
    "keras_speech_music_cnn.hdf5": (
        "14379ba71352d8981bc24a15c069c84cf6f78ff2ffe7377d43b32465ebd06e01"
    ),
    "keras_speech_music_noise_cnn.hdf5": (
        "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8"
    ),
}

# Front end (SIDEKIT's defaults as inaSpeechSegmenter calls them).
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
PRE_EMPHASIS = 0.97
N_MELS = 24
F_LOW, F_HIGH = 100.0, 8000.0
# Patches (segmenter.py: _get_patches(mspec, 68, 2)).
PATCH = 68
STEP = 2
# Patches of one clip go through the network this many at a time (bounds the memory).
CHUNK = 512


class InaWeightsError(RuntimeError):
    """A weight file that is missing, altered or of a shape this port does not know."""


def package_dir() -> Path:
    """The installed package's directory, found without importing it (its __init__
    imports TensorFlow)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed; {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(name: str) -> Path:
    """The package's weight file `name`, after checking its SHA-256 against WEIGHTS."""
    path = package_dir() / name
    if not path.is_file():
        raise InaWeightsError(f"{path} is missing: reinstall {PACKAGE} {VERSION} ({INSTALL})")
    found, expected = sha256(path), WEIGHTS[name]
    if found != expected:
        raise InaWeightsError(
            f"{path} has SHA-256 {found}, not {expected} ({PACKAGE} {VERSION}'s); "
            f"reinstall that version ({INSTALL})"
        )
    return path


def mel_filterbank() -> np.ndarray:
    """SIDEKIT's 24 triangular filters (24, N_FFT // 2 + 1), float32, as `trfbank` builds
    them for inaSpeechSegmenter: edges equally spaced on the HTK mel scale from F_LOW to
    F_HIGH, each triangle of area-normalising height 2 / (upper - lower edge), on the
    bins strictly above the lower edge up to the centre, then above the centre; SIDEKIT
    leaves out the last bin of each falling side (kept here: the weights learnt it)."""

    def mel(f: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: Any) -> Any:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    step = (mel(F_HIGH) - mel(F_LOW)) / (N_MELS + 1)
    edges = hz(mel(F_LOW) + np.arange(N_MELS + 2) * step)
    heights = 2.0 / (edges[2:] - edges[:-2])
    bin_hz = np.arange(N_FFT) / N_FFT * SAMPLE_RATE
    bank = np.zeros((N_MELS, N_FFT // 2 + 1), dtype=np.float32)
    for i in range(N_MELS):
        low, centre, high = edges[i], edges[i + 1], edges[i + 2]
        lo_bin = math.floor(low * N_FFT / SAMPLE_RATE)
        mid_bin = math.floor(centre * N_FFT / SAMPLE_RATE)
        hi_bin = min(math.floor(high * N_FFT / SAMPLE_RATE) + 1, N_FFT)
        rising = np.arange(lo_bin + 1, mid_bin + 1)
        falling = np.arange(mid_bin + 1, hi_bin)[:-1]
        bank[i, rising] = heights[i] / (centre - low) * (bin_hz[rising] - low)
        bank[i, falling] = heights[i] / (high - centre) * (high - bin_hz[falling])
    return bank


def pcm16(waves: Any) -> Any:
    """The waves (a torch tensor) as the package hears them, decoded into a 16-bit WAV:
    multiples of 1/32768 in [-1, 32767/32768], rounded as soundfile writes 16-bit WAV
    (freqrex.renderings.as_written_16bit), so a float signal and its own 16-bit WAV round
    trip give the same samples here, and a 16-bit source is unchanged (ffmpeg rounds to
    the nearest step instead: an offset of at most one step, which the features do not
    see)."""
    import torch  # torch: labels are read without it (catalog sync)

    from sigwarehouse.freqrex.renderings import as_written_16bit  # torch's too, as above

    heard = as_written_16bit(waves.detach().cpu().numpy())
    return torch.from_numpy(heard).to(device=waves.device, dtype=waves.dtype)


def log_mel(waves: Any) -> Any:
    """Log-mel energies (batch, frames, 24), float64 torch, of float waves (batch, samples)
    at 16 kHz; clips shorter than PATCH frames are padded to it with their minimum."""
    import torch  # torch: labels are read without it (catalog sync)

    x = torch.as_tensor(waves).to(torch.float64)
    if x.ndim != 2 or x.shape[1] < FRAME:
        raise ValueError(
            f"expected waveforms shaped (batch, samples >= {FRAME}), got {tuple(x.shape)}"
        )
    frames = x.unfold(1, FRAME, HOP)  # (batch, n, FRAME), no padding: as SIDEKIT frames
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - PRE_EMPHASIS * previous
    window = torch.hann_window(FRAME, periodic=False, dtype=torch.float64, device=x.device)
    spectrum = torch.fft.rfft(frames * window, n=N_FFT).abs().square()
    bank = torch.from_numpy(mel_filterbank()).to(x.device, torch.float64)
    mspec = torch.log(spectrum @ bank.T)
    short = PATCH - mspec.shape[1]
    if short > 0:  # the package pads a short clip with its smallest value
        fill = mspec.amin(dim=(1, 2), keepdim=True).expand(-1, short, N_MELS)
        mspec = torch.cat([mspec, fill], dim=1)
    return mspec


def patches(mspec: Any, n_mels: int, hop: int = STEP) -> Any:
    """Standardised patches (batch, n_patches, PATCH, n_mels), float64 torch, of the first
    `n_mels` bands: PATCH frames every `hop` frames, each minus its mean over its values,
    divided by their population standard deviation (NaN or inf where it is 0 or not
    finite)."""
    p = mspec[..., :n_mels].unfold(1, PATCH, hop).transpose(2, 3)
    mean = p.mean(dim=(2, 3), keepdim=True)
    std = p.std(dim=(2, 3), keepdim=True, correction=0)
    return (p - mean) / std


@dataclass
class Layer:
    """One layer of the Sequential network: its Keras class, configuration and arrays."""

    kind: str
    config: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


ALLOWED = {
    "Reshape",
    "Conv2D",
    "BatchNormalization",
    "Activation",
    "MaxPooling2D",
    "Flatten",
    "Dense",
    "Dropout",
}
ACTIVATIONS = {"linear", "relu", "softmax"}


def _refuse(path: Path, layer: str, why: str) -> InaWeightsError:
    return InaWeightsError(
        f"{path}: layer {layer}: {why}; this port reads {PACKAGE} {VERSION}'s files only "
        f"({INSTALL})"
    )


def read_network(path: Path) -> list[Layer]:
    """The layers of a Keras 2 Sequential `.hdf5`: its `model_config` JSON and each layer's
    arrays (named by their Keras role: kernel, bias, gamma, beta, moving_mean,
    moving_variance). Reads arrays only; refuses layers and options outside the
    allow-list with InaWeightsError."""
    try:
        import h5py  # h5py: the `ina` extra, needed only once weights are read
    except ImportError as exc:
        raise ImportError(f"h5py is not installed ({exc}); {INSTALL}") from exc

    with h5py.File(path, "r") as h5:
        config = json.loads(h5.attrs["model_config"])
        if config.get("class_name") != "Sequential":
            raise _refuse(path, "(model)", f"a {config.get('class_name')} model")
        group = h5["model_weights"]
        layers = []
        for spec in config["config"]["layers"]:
            kind, cfg = spec["class_name"], spec["config"]
            name = cfg["name"]
            if kind not in ALLOWED:
                raise _refuse(path, name, f"{kind} is not a layer this port runs")
            if cfg.get("activation", "linear") not in ACTIVATIONS:
                raise _refuse(path, name, f"activation {cfg['activation']!r}")
            if cfg.get("data_format", "channels_last") != "channels_last":
                raise _refuse(path, name, f"data_format {cfg['data_format']!r}")
            if kind == "Conv2D" and (
                cfg["padding"] != "valid"
                or tuple(cfg["strides"]) != (1, 1)
                or tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1)
            ):
                raise _refuse(path, name, "a Conv2D other than stride 1, valid padding")
            if kind == "MaxPooling2D" and cfg["padding"] not in ("valid", "same"):
                raise _refuse(path, name, f"padding {cfg['padding']!r}")
            if kind == "BatchNormalization" and cfg["axis"] not in (-1, 3, [-1], [3]):
                raise _refuse(path, name, f"normalising axis {cfg['axis']}")
            arrays = {}
            if name in group:
                for weight in group[name].attrs["weight_names"]:
                    weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                    role = weight.rsplit("/", 1)[-1].split(":")[0]
                    arrays[role] = np.asarray(group[name][weight], dtype=np.float32)
            layers.append(Layer(kind, cfg, arrays))
    return layers


def count_params(layers: list[Layer]) -> int:
    """Every stored number (Keras's count_params: BatchNormalization statistics included)."""
    return sum(a.size for layer in layers for a in layer.arrays.values())


def _same_pads(size: int, pool: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: (before, after), the odd one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def fold_batch_norm(
    kernel: np.ndarray, bias: np.ndarray, bn: Layer
) -> tuple[np.ndarray, np.ndarray]:
    """A Conv2D or Dense layer's Keras (kernel, bias) with the BatchNormalization that
    follows it folded in: BN(x W + b) = x (W * scale) + (b * scale + shift), scale = gamma /
    sqrt(moving_variance + epsilon) per output channel (the kernel's last axis in Keras),
    shift = beta - moving_mean * scale. Exact but for float rounding; computed in float64
    and returned as float32."""
    arr = bn.arrays
    variance = arr["moving_variance"].astype(np.float64)
    scale = arr["gamma"].astype(np.float64) / np.sqrt(variance + bn.config["epsilon"])
    shift = arr["beta"].astype(np.float64) - arr["moving_mean"].astype(np.float64) * scale
    folded = kernel.astype(np.float64) * scale
    return folded.astype(np.float32), (bias.astype(np.float64) * scale + shift).astype(np.float32)


class Network:
    """The Keras network in torch (NCHW axes, channels-last memory inside; Keras's
    channels-last order at Flatten).
    Weights are converted once, at construction; a BatchNormalization directly after a
    linear Conv2D or Dense (Conv -> BN -> ReLU in these files) is folded into that layer's
    weights, which spares a pass over every activation (any other stays a multiply-add)."""

    def __init__(self, layers: list[Layer], device: Any = "cpu"):
        import torch  # torch: labels are read without it (catalog sync)

        def tensor(a: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.steps: list[tuple[str, tuple]] = []
        for layer in layers:
            cfg, arr = layer.config, layer.arrays
            # the last step is a Conv2D or Dense without activation (Dropout adds no step)
            foldable = bool(self.steps) and self.steps[-1][0] in ("conv", "dense")
            if layer.kind == "Conv2D":  # Keras kernels are (h, w, in, out)
                self.steps.append(("conv", (arr["kernel"], arr["bias"])))
            elif layer.kind == "Dense":  # (in, out)
                self.steps.append(("dense", (arr["kernel"], arr["bias"])))
            elif layer.kind == "BatchNormalization" and foldable:
                op, (kernel, bias) = self.steps[-1]
                self.steps[-1] = (op, fold_batch_norm(kernel, bias, layer))
            elif layer.kind == "BatchNormalization":
                scale = arr["gamma"] / np.sqrt(arr["moving_variance"] + cfg["epsilon"])
                shift = arr["beta"] - arr["moving_mean"] * scale
                self.steps.append(("affine", (tensor(scale), tensor(shift))))
            elif layer.kind == "MaxPooling2D":
                pool = (tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"])
                self.steps.append(("pool", pool))
            elif layer.kind == "Flatten":
                self.steps.append(("flatten", ()))
            # Reshape only adds the channel axis (done in __call__); Dropout is off
            activation = cfg.get("activation", "linear")
            if activation != "linear":
                self.steps.append((activation, ()))
        for i, (op, args) in enumerate(self.steps):  # numpy arrays -> torch, once
            if op == "conv":
                kernel, bias = args
                self.steps[i] = (op, (tensor(kernel.transpose(3, 2, 0, 1)), tensor(bias)))
            elif op == "dense":
                self.steps[i] = (op, (tensor(args[0]), tensor(args[1])))

    def __call__(self, x: Any) -> Any:
        """Softmax outputs (n, classes) of float32 patches (n, PATCH, n_mels)."""
        import torch  # torch: as above
        import torch.nn.functional as F  # torch: as above

        h = x[:, None]
        for op, args in self.steps:
            if op == "conv":
                # channels-last: the same values, and max pooling runs several times faster
                # on it (a no-op after the first, whose 1 channel leaves torch the choice)
                h = F.conv2d(h, args[0], args[1]).contiguous(memory_format=torch.channels_last)
            elif op == "dense":
                h = torch.addmm(args[1], h, args[0])
            elif op == "affine":
                shape = (1, -1, 1, 1) if h.ndim == 4 else (1, -1)
                h = h * args[0].view(shape) + args[1].view(shape)
            elif op == "pool":
                pool, stride, padding = args
                if padding == "same":
                    top, bottom = _same_pads(h.shape[2], pool[0], stride[0])
                    left, right = _same_pads(h.shape[3], pool[1], stride[1])
                    h = F.pad(h, (left, right, top, bottom), value=-math.inf)
                h = F.max_pool2d(h, pool, stride)
            elif op == "flatten":
                h = h.permute(0, 2, 3, 1).flatten(1)
            elif op == "relu":
                # in place, on this pass's own tensor (not on the input's, were relu first)
                h = h.relu_() if h.data_ptr() != x.data_ptr() else h.relu()
            elif op == "softmax":
                h = torch.softmax(h, dim=-1)
        return h


class InaCNN:
    """One of the package's CNNs as a clip classifier (see the module doc).

    The cost is the network's, one pass per patch: a 4 s clip has 167 patches at the
    package's hop of 2 frames. `hop` (frames between patches) trades that for fidelity to
    the package's dense scoring; the factories keep the package's. `device` is where the
    network runs (the features are computed on it too)."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self, weights: str, labels: list[str], n_mels: int, hop: int = STEP, device: str = "cpu"
    ):
        self.weights = weights
        self.labels = list(labels)
        self.n_mels = n_mels
        self.hop = hop
        self.device = device
        self.path = package_dir() / weights  # fails early when the package is missing
        self._net: Network | None = None

    def network(self) -> Network:
        """The network, built at the first call after the file's SHA-256 is checked."""
        if self._net is None:
            layers = read_network(weights_path(self.weights))
            shape = list(layers[0].config.get("target_shape", []))
            if layers[0].kind != "Reshape" or shape != [PATCH, self.n_mels, 1]:
                raise _refuse(self.path, "(input)", f"not patches of {PATCH} x {self.n_mels}")
            out = layers[-1].arrays["kernel"].shape[1]
            if out != len(self.labels):
                raise _refuse(self.path, "(output)", f"{out} outputs for labels {self.labels}")
            self._net = Network(layers, self.device)
        return self._net

    def patch_probs(self, waves: np.ndarray) -> tuple[Any, Any]:
        """Per-patch probabilities, float64 torch (batch, n_patches, classes), and which
        patches are finite (batch, n_patches); a patch that is not gets NaN."""
        import torch  # torch: as above

        net = self.network()
        x = torch.as_tensor(np.asarray(waves, dtype=np.float32), device=self.device)
        p = patches(log_mel(pcm16(x)), self.n_mels, self.hop)
        finite = torch.isfinite(p).all(dim=3).all(dim=2)
        p = p.float()
        out = torch.full((*p.shape[:2], len(self.labels)), math.nan, dtype=torch.float64)
        with torch.inference_mode():
            for b in range(p.shape[0]):  # one clip at a time: its answer is its own
                keep = finite[b].nonzero().squeeze(1)
                if len(keep):
                    probs = [net(chunk) for chunk in p[b, keep].split(CHUNK)]
                    out[b, keep.cpu()] = torch.cat(probs).double().cpu()
        return out, finite.cpu()

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Probabilities (batch, classes) in `labels` order: the mean over the clip's finite
        patches, uniform where it has none."""
        out, finite = self.patch_probs(waves)
        n = finite.sum(dim=1, keepdim=True)
        total = out.nan_to_num(0.0).sum(dim=1)
        uniform = total.new_full(total.shape, 1.0 / len(self.labels))
        probs = (total / n.clamp(min=1)).where(n > 0, uniform)
        return probs.numpy().astype(np.float32)


def gender() -> InaCNN:
    """inaSpeechSegmenter's speaker-gender CNN (MIT): female / male."""
    return InaCNN("keras_male_female_cnn.hdf5", ["female", "male"], n_mels=24)


def speech_music() -> InaCNN:
    """inaSpeechSegmenter's speech/music CNN ('sm', MIT): speech / music."""
    return InaCNN("keras_speech_music_cnn.hdf5", ["speech", "music"], n_mels=21)


def speech_music_noise() -> InaCNN:
    """inaSpeechSegmenter's speech/music/noise CNN ('smn', MIT): speech / music / noise."""
    return InaCNN("keras_speech_music_noise_cnn.hdf5", ["speech", "music", "noise"], n_mels=21)
