"""Spoof task: recorded human speech (real) versus synthetic speech and vocoder copies (fake).

Real clips come from recordings shipped in Debian packages: Allison Smith's Asterisk
prompts (8 kHz telephone speech, CC BY-SA 3.0), pocketsphinx's test recordings
(LibriVox and CMU, 16 kHz) and ALSA's spoken channel names (48 kHz; train only, so
no GPL-2 audio sits in the committed eval split). Each source recording belongs to
exactly one split. Fake clips are (a) Griffin-Lim resyntheses from a mel spectrogram
of a real recording of the same split and (b) flite/festival/espeak-ng speech of the
same prompts' text, part of it band-limited to a phone line and given a noise floor,
so bandwidth and digital silence do not give the class away.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.signal import ShortTimeFFT
from scipy.signal.windows import hann

from sigwarehouse.corpus.debian import ALSA_DIR, ASTERISK_DIR, POCKETSPHINX_DIR
from sigwarehouse.corpus.tts import ESPEAK_VOICES, PROSODY_VOICES, espeak, synthesise
from sigwarehouse.corpus.waveform import (
    SR,
    fit_length,
    load_mono,
    load_raw16,
    peak_normalise,
    telephone,
    trim_silence,
)

LABELS: tuple[str, ...] = ("real", "fake")
ORIGIN_WEIGHTS = {"asterisk": 0.65, "pocketsphinx": 0.25, "alsa": 0.10}


@dataclass(frozen=True)
class Recording:
    """One human recording: where it is, what it says (None if unknown), its split."""

    origin: str
    path: str
    text: str | None
    split: str

    @property
    def name(self) -> str:
        """origin:path-under-/usr/share, for manifests."""
        return f"{self.origin}:{self.path.removeprefix('/usr/share/')}"


def _transcripts(path: str) -> dict[str, str]:
    # Lines look like "<s> ten of clubs </s> (001)".
    out = {}
    with open(path) as f:
        for line in f:
            words, _, key = line.rpartition("(")
            out[key.strip(" )\n")] = words.replace("<s>", "").replace("</s>", "").strip()
    return out


@cache
def recordings() -> tuple[Recording, ...]:
    """Every usable human recording, with a fixed train/eval assignment by source file.

    The assignment does not depend on the seed: every eighth Asterisk prompt and every
    fourth pocketsphinx recording (sorted by path) is eval, ALSA is train only.
    """
    out: list[Recording] = []
    prompts = sorted(p for p in ASTERISK_DIR.rglob("*.wav") if p.parent.name != "silence")
    for i, p in enumerate(prompts):
        text = p.stem.replace("-", " ").replace("_", " ")
        out.append(Recording("asterisk", str(p), text, "eval" if i % 8 == 3 else "train"))
    ps: list[tuple[str, str | None]] = []
    for sub in ("librivox", "cards"):
        trans = _transcripts(str(next((POCKETSPHINX_DIR / sub).glob("*transcription"))))
        ps += [(str(p), trans.get(p.stem)) for p in sorted((POCKETSPHINX_DIR / sub).glob("*.wav"))]
    ps += [(str(POCKETSPHINX_DIR / "goforward.raw"), "go forward ten meters")]
    ps += [(str(POCKETSPHINX_DIR / n), None) for n in ("numbers.raw", "something.raw")]
    for i, (path, text) in enumerate(sorted(ps)):
        out.append(Recording("pocketsphinx", path, text, "eval" if i % 4 == 1 else "train"))
    for p in sorted(ALSA_DIR.glob("*.wav")):
        if p.stem != "Noise":
            out.append(Recording("alsa", str(p), p.stem.replace("_", " "), "train"))
    return tuple(out)


def _load(rec: Recording) -> np.ndarray:
    return load_raw16(rec.path) if rec.path.endswith(".raw") else load_mono(rec.path)


def _choose(rng: np.random.Generator, split: str, need_text: bool = False) -> Recording:
    pool = [r for r in recordings() if r.split == split and (r.text or not need_text)]
    origins = sorted({r.origin for r in pool})
    w = np.array([ORIGIN_WEIGHTS[o] for o in origins])
    origin = origins[int(rng.choice(len(origins), p=w / w.sum()))]
    group = [r for r in pool if r.origin == origin]
    return group[int(rng.integers(len(group)))]


def _mel_filters(n_fft: int, n_mels: int) -> np.ndarray:
    # Triangular filters evenly spaced on the HTK mel scale from 0 Hz to Nyquist.
    mel = np.linspace(0.0, 2595 * np.log10(1 + (SR / 2) / 700), n_mels + 2)
    edges = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.linspace(0, SR / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / (mid - lo)
    down = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


def griffin_lim(
    x: np.ndarray, rng: np.random.Generator, n_fft: int, n_mels: int, n_iter: int
) -> np.ndarray:
    """x resynthesised from its mel magnitude spectrogram by Griffin-Lim phase recovery.

    The magnitude is projected to n_mels bands and back (pseudo-inverse, clipped at 0),
    then n_iter Griffin-Lim iterations start from random phase: the resynthesis keeps
    the words and voice but carries the smearing and phasiness of a vocoder.
    """
    stft = ShortTimeFFT(hann(n_fft, sym=False), hop=n_fft // 4, fs=SR)
    mag = np.abs(stft.stft(x))
    fb = _mel_filters(n_fft, n_mels)
    mag = np.maximum(np.linalg.pinv(fb) @ (fb @ mag), 0.0)
    phase = np.exp(2j * np.pi * rng.random(mag.shape))
    for _ in range(n_iter):
        y = stft.istft(mag * phase, k1=len(x))
        phase = np.exp(1j * np.angle(stft.stft(y)))
    return stft.istft(mag * phase, k1=len(x))


def plan(label: str, split: str, rng: np.random.Generator) -> dict:
    """Random parameters of one spoof clip; refuses (KeyError) an unknown label."""
    {"real": 0, "fake": 1}[label]
    if label == "real":
        return {"method": "real", "seconds": float(rng.uniform(1.5, 4.0))}
    u = rng.random()
    method = (
        "vocoder" if u < 0.45 else "flite" if u < 0.67 else "festival" if u < 0.84 else "espeak"
    )
    return {
        "method": method,
        "seconds": float(rng.uniform(1.5, 4.0)),
        "telephone": bool(rng.random() < 0.6),
        "noise_db": float(rng.uniform(-65, -40)) if rng.random() < 0.7 else None,
    }


def render(params: dict, split: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The waveform of one spoof clip planned by plan(), and a one-line source note."""
    method = params["method"]
    if method in ("real", "vocoder"):
        rec = _choose(rng, split)
        x = fit_length(trim_silence(_load(rec)), rng, max_s=params["seconds"])
        src = rec.name
        if method == "vocoder":
            n_fft = int(rng.choice([512, 1024]))
            n_mels = int(rng.choice([32, 48, 64, 80]))
            n_iter = int(rng.choice([8, 16, 32, 64]))
            x = griffin_lim(x, rng, n_fft, n_mels, n_iter)
            src = f"griffinlim(n_fft={n_fft},mels={n_mels},iter={n_iter}) of {src}"
    else:
        rec = _choose(rng, split, need_text=True)
        if method == "espeak":
            voice = ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]
            x = espeak(rec.text, voice, int(rng.integers(130, 190)), int(rng.integers(30, 70)))
        else:
            voices = [v for v in PROSODY_VOICES if v.engine == method]
            v = voices[int(rng.integers(len(voices)))]
            voice = v.name
            f0 = v.base_f0 * float(rng.uniform(0.9, 1.15))
            x = synthesise(
                v, rec.text, f0, f0 * float(rng.uniform(0.08, 0.18)), rng.uniform(0.9, 1.15)
            )
        x = fit_length(trim_silence(x), rng, max_s=params["seconds"])
        if params["telephone"]:
            x = telephone(x)
        if params["noise_db"] is not None:
            # Recordings are never digitally silent; give synthetic speech a noise floor.
            x = x + rng.normal(0.0, np.max(np.abs(x)) * 10 ** (params["noise_db"] / 20), len(x))
        src = f"{method}:{voice} text of {rec.name}"
    return peak_normalise(x, float(rng.uniform(-6.0, -1.0))), src
