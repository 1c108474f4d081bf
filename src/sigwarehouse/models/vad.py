"""Pretrained voice-activity detectors as `kind = "python"` models of the `speech` task.

Each factory here (`ref = "sigwarehouse.models.vad:silero"`, `:webrtc`, `:earshot`)
returns a detector with labels ["speech", "non-speech"] at 16 kHz, whose trained weights
ship inside its PyPI wheel (the `vad` extra: `pip install 'sigwarehouse[vad]'`);
nothing is fetched at run time. A detector scores frames; a clip's probabilities are

- Silero VAD (`silero-vad`, CNN + LSTM, 512-sample frames of 32 ms): the mean of its
  per-frame speech probabilities;
- Earshot (`earshot`, a small neural network in Rust, 256-sample frames of 16 ms): the
  mean of its per-frame voice scores (in [0, 1]);
- WebRTC VAD (`webrtcvad-wheels`, Google's GMM detector, aggressiveness mode 3,
  480-sample frames of 30 ms): yes/no per frame, so the share of speech frames,
  smoothed as (k + 1) / (n + 2) for k speech frames of n (Laplace's rule), so that no
  clip gets exactly 0 or 1 and entropy stays defined;

with P(non-speech) = 1 - P(speech). Every clip is scored from a fresh detector state
(the detectors are streaming: their state would otherwise carry one clip into the next),
and a clip's last partial frame is zero-padded, as silero-vad's own `audio_forward`
does. WebRTC takes 16-bit samples and Earshot samples in [-1, 1], so for them a masked
signal is clipped to [-1, 1] first (and rounded to 16 bits for WebRTC); Silero hears the
float signal as it is.

Silero's network is run here in plain batched torch, with the weights of the TorchScript
file in the wheel (`silero_vad/data/silero_vad.jit`), because the TorchScript model runs
one batch frame by frame under the JIT's profiling executor, which recompiles for every
new batch size. tests/test_vad.py checks each detector here against its package's own
API on clips of the shipped set.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["speech", "non-speech"]
SAMPLE_RATE = 16000
INSTALL = "install the VAD packages with `pip install 'sigwarehouse[vad]'` (or `make setup`)"


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{package} is not installed ({exc}); {INSTALL}") from exc


def frames(waves: np.ndarray, size: int) -> np.ndarray:
    """(batch, n_frames, size) float32: each wave cut into frames, the tail zero-padded."""
    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim != 2 or waves.shape[1] == 0:
        raise ValueError(f"expected waveforms shaped (batch, samples > 0), got {waves.shape}")
    pad = (-waves.shape[1]) % size
    if pad:
        waves = np.pad(waves, ((0, 0), (0, pad)))
    return waves.reshape(waves.shape[0], -1, size)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples clipped to [-1, 1] and rounded to 16-bit integers (scale 32767)."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class Detector:
    """What every detector here shares: labels, rate, and clip probabilities from
    `speech(waves) -> P(speech) per clip`."""

    labels = LABELS
    sample_rate = SAMPLE_RATE

    def speech(self, waves: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Probabilities (batch, 2) in LABELS order for float32 waves (batch, samples)."""
        p = np.asarray(self.speech(waves), dtype=np.float64)
        return np.stack([p, 1.0 - p], axis=1).astype(np.float32)


class WebRtcVAD(Detector):
    """WebRTC's GMM detector: the smoothed share of 30 ms frames it calls speech."""

    frame = 480

    def __init__(self, mode: int = 3):
        self._webrtcvad = _import("webrtcvad", "webrtcvad-wheels")
        self.mode = mode

    def speech(self, waves: np.ndarray) -> np.ndarray:
        out = []
        for clip in to_int16(frames(waves, self.frame)):
            vad = self._webrtcvad.Vad(self.mode)  # fresh state per clip
            k = sum(vad.is_speech(f.tobytes(), SAMPLE_RATE) for f in clip)
            out.append((k + 1) / (len(clip) + 2))
        return np.asarray(out)


class EarshotVAD(Detector):
    """Earshot's neural detector: the mean voice score of its 16 ms frames."""

    frame = 256

    def __init__(self):
        self._detector = _import("earshot", "earshot").Detector()

    def speech(self, waves: np.ndarray) -> np.ndarray:
        out = []
        for clip in np.clip(frames(waves, self.frame), -1.0, 1.0):
            self._detector.reset()  # fresh state per clip
            out.append(np.mean([self._detector.predict_f32(f) for f in clip]))
        return np.asarray(out)


def silero_jit_path() -> Path:
    """silero-vad's TorchScript file in the installed wheel (found without importing the
    package, whose import sets torch's thread count to 1 for the whole process)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"silero-vad is not installed; {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall silero-vad ({INSTALL})")
    return path


class SileroVAD(Detector):
    """Silero VAD 16 kHz: the mean speech probability of its 32 ms frames.

    Per frame, silero-vad's model sees the frame's 512 samples after the previous 64
    (zeros before the first), reflect-padded by 64 at the end: an STFT as a conv (256
    taps, hop 128, 129 magnitudes), four conv layers down to one 128-vector, an LSTM cell
    carried from frame to frame, and a 1x1 conv with a sigmoid. The frames' convolutions
    run as one batch; only the LSTM steps through time. Weights load at the first call.
    """

    frame = 512
    context = 64

    def __init__(self):
        self.path = silero_jit_path()
        self._w: dict[str, Any] | None = None

    def _weights(self) -> dict[str, Any]:
        if self._w is None:
            import torch  # torch: VAD labels are read without it (catalog sync)

            with warnings.catch_warnings():  # torch 2.10+ marks torch.jit deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                sd = torch.jit.load(str(self.path), map_location="cpu").state_dict()
            w = {"stft": sd["_model.stft.forward_basis_buffer"]}
            for i in range(4):
                w[f"conv{i}.weight"] = sd[f"_model.encoder.{i}.reparam_conv.weight"]
                w[f"conv{i}.bias"] = sd[f"_model.encoder.{i}.reparam_conv.bias"]
            cell = torch.nn.LSTMCell(128, 128)
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            cell.load_state_dict({k: sd[f"_model.decoder.rnn.{k}"] for k in names})
            w["lstm"] = cell.eval()
            w["out.weight"] = sd["_model.decoder.decoder.2.weight"][:, :, 0]
            w["out.bias"] = sd["_model.decoder.decoder.2.bias"]
            self._w = w
        return self._w

    def frame_probs(self, waves: np.ndarray) -> Any:
        """Per-frame speech probabilities, a torch tensor (batch, n_frames)."""
        import torch  # torch: VAD labels are read without it (catalog sync)
        import torch.nn.functional as F  # torch: as above

        w = self._weights()
        x = torch.from_numpy(frames(waves, self.frame).reshape(len(waves), -1))
        b, n = x.shape[0], x.shape[1] // self.frame
        x = F.pad(x, (self.context, 0))  # zeros as the first frame's context
        chunks = x.unfold(1, self.context + self.frame, self.frame).reshape(b * n, 1, -1)
        with torch.inference_mode():
            h = F.pad(chunks, (0, self.context), mode="reflect")
            spec = F.conv1d(h, w["stft"], stride=128)
            h = (spec[:, :129] ** 2 + spec[:, 129:] ** 2).sqrt()
            for i, stride in enumerate((1, 2, 2, 1)):
                h = F.conv1d(h, w[f"conv{i}.weight"], w[f"conv{i}.bias"], stride, 1).relu()
            feats = h.reshape(b, n, 128)
            hx = cx = torch.zeros(b, 128)
            outs = []
            for t in range(n):
                hx, cx = w["lstm"](feats[:, t], (hx, cx))
                outs.append(hx)
            hidden = torch.stack(outs, dim=1).relu()
            return torch.sigmoid(hidden @ w["out.weight"].T + w["out.bias"]).squeeze(-1)

    def speech(self, waves: np.ndarray) -> np.ndarray:
        return self.frame_probs(waves).mean(dim=1).numpy()


def silero() -> SileroVAD:
    """Silero VAD (silero-vad, MIT): mean frame speech probability."""
    return SileroVAD()


def webrtc() -> WebRtcVAD:
    """WebRTC VAD (webrtcvad-wheels, MIT; WebRTC code BSD-3-Clause), mode 3: smoothed
    share of speech frames."""
    return WebRtcVAD(mode=3)


def earshot() -> EarshotVAD:
    """Earshot (earshot, MIT OR Apache-2.0): mean frame voice score."""
    return EarshotVAD()
