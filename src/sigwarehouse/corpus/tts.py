"""Thin wrappers over Debian's offline synthesisers: flite, festival and espeak-ng.

Each returns a mono float64 waveform at 16 kHz. Prosody is set natively where the
engine supports it (flite and festival: F0 mean and spread, duration stretch), so
the pitch and rate changes come from the synthesiser, not from audio post-processing.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigwarehouse.corpus.waveform import load_mono


@dataclass(frozen=True)
class Voice:
    """A synthesiser voice and its natural F0 (Hz), so prosody can be set relative to it."""

    engine: str  # "flite" or "festival"
    name: str
    base_f0: float


# Voices whose F0 targets the engine honours (flite's rms ignores them, so it is left out).
PROSODY_VOICES: tuple[Voice, ...] = (
    Voice("flite", "kal16", 105.0),
    Voice("flite", "kal", 105.0),  # 8 kHz diphone voice: band-limited, like a phone line
    Voice("flite", "awb", 115.0),
    Voice("flite", "slt", 175.0),
    Voice("festival", "kal_diphone", 105.0),
    Voice("festival", "ked_diphone", 110.0),
)

ESPEAK_VOICES: tuple[str, ...] = (
    "en-us",
    "en-us+f3",
    "en-us+m3",
    "en+f2",
    "en+m1",
    "en-gb-scotland",
    "en-029+f4",
    "en-gb-x-rp+m5",
)


def _clean(text: str) -> str:
    # Only letters, digits and simple punctuation reach a shell-free argv or a Scheme string.
    return re.sub(r"[^A-Za-z0-9 ,.'?!-]", " ", text).strip()


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")


def synthesise(
    voice: Voice, text: str, f0_mean: float, f0_std: float, stretch: float
) -> np.ndarray:
    """Speech for text in voice with the given F0 mean/std (Hz) and duration stretch.

    Returns a 16 kHz mono waveform; raises RuntimeError when the engine fails or
    ValueError for an unknown engine.
    """
    text = _clean(text)
    with tempfile.TemporaryDirectory(prefix="sigwh-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        if voice.engine == "flite":
            _run(
                [
                    "flite",
                    "-voice",
                    voice.name,
                    "--setf",
                    f"int_f0_target_mean={f0_mean:.2f}",
                    "--setf",
                    f"int_f0_target_stddev={f0_std:.2f}",
                    "--setf",
                    f"duration_stretch={stretch:.3f}",
                    "-t",
                    text,
                    "-o",
                    str(wav),
                ]
            )
        elif voice.engine == "festival":
            # The voice must be selected first: selecting it resets int_lr_params.
            script = Path(tmp) / "say.scm"
            script.write_text(
                f"(voice_{voice.name})\n"
                f"(set! int_lr_params '((target_f0_mean {f0_mean:.2f}) "
                f"(target_f0_std {f0_std:.2f}) (model_f0_mean 170) (model_f0_std 34)))\n"
                f"(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
                f'(set! utt1 (Utterance Text "{text}"))\n'
                "(utt.synth utt1)\n"
                f'(utt.save.wave utt1 "{wav}" \'riff)\n'
            )
            _run(["festival", "-b", str(script)])
        else:
            raise ValueError(f"unknown engine {voice.engine!r}")
        return load_mono(wav)


def espeak(text: str, voice: str, words_per_minute: int, pitch: int) -> np.ndarray:
    """Speech for text from espeak-ng (formant synthesis), as a 16 kHz mono waveform.

    pitch is espeak's 0-99 scale. Raises RuntimeError when espeak-ng fails.
    """
    with tempfile.TemporaryDirectory(prefix="sigwh-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        _run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(words_per_minute),
                "-p",
                str(pitch),
                "-w",
                str(wav),
                _clean(text),
            ]
        )
        return load_mono(wav)
