"""Emotion-like speech: five prosody classes rendered by flite and festival.

Each class is a prosody profile relative to the voice's natural pitch: F0 level and
spread, speaking rate, and vocal effort (spectral tilt, compression, level). Every
clip draws its voice, sentence and a jitter of each profile value, so classes overlap
at the edges. Train and eval use disjoint sentence lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from sigwarehouse.corpus.tts import PROSODY_VOICES, synthesise
from sigwarehouse.corpus.waveform import SR, fit_length, lowpass, peak_normalise, trim_silence

LABELS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry")


@dataclass(frozen=True)
class Profile:
    """Prosody and effort of one class (factors relative to the voice)."""

    f0: float  # F0 mean / voice base F0
    spread: float  # F0 std / F0 mean (intonation range)
    stretch: float  # duration stretch (>1 is slower)
    cutoff_hz: float | None  # low-pass for soft, muffled effort
    brightness: float  # amount of added high band (>0: pressed, tense voice)
    drive: float  # soft-clip drive (>1 compresses: loud, effortful)
    peak_db: tuple[float, float]  # range of the clip's peak level


PROFILES: dict[str, Profile] = {
    "neutral": Profile(1.00, 0.13, 1.00, None, 0.0, 1.0, (-6.0, -2.0)),
    "calm": Profile(0.90, 0.06, 1.22, 4500.0, 0.0, 1.0, (-9.0, -4.0)),
    "happy": Profile(1.38, 0.26, 0.86, None, 0.5, 1.6, (-4.0, -1.0)),
    "sad": Profile(0.80, 0.025, 1.42, 2800.0, 0.0, 1.0, (-12.0, -6.0)),
    "angry": Profile(1.15, 0.22, 0.78, None, 1.2, 4.0, (-2.5, -0.5)),
}

TRAIN_SENTENCES: tuple[str, ...] = (
    "The train leaves the station at nine.",
    "Please put the blue cup on the table.",
    "We walked along the river after lunch.",
    "The window in the kitchen is open.",
    "My brother bought a new bicycle today.",
    "The meeting has been moved to Thursday.",
    "She found the keys under the sofa.",
    "There is fresh bread in the basket.",
    "The garden looks different in the spring.",
    "He wrote the letter with a green pen.",
    "The shop on the corner closes early.",
    "They painted the fence on Saturday.",
    "I left my umbrella on the bus.",
    "The children are playing in the yard.",
    "Our neighbours have a small brown dog.",
    "The soup needs a little more salt.",
    "We will take the early flight home.",
    "The lamp on the desk is broken.",
    "A red car stopped in front of the house.",
    "The library opens again on Monday.",
    "He carried the boxes up the stairs.",
    "The coffee in this cup is cold.",
    "She plays the piano every evening.",
    "The road to the village is narrow.",
    "I have read that book twice.",
    "The clock in the hall is slow.",
    "They moved to a flat near the park.",
    "The teacher asked us to sit down.",
    "We need two tickets for the show.",
    "The bridge was built many years ago.",
    "My sister works at the hospital.",
    "The wind blew the papers off the desk.",
    "He forgot to close the garage door.",
    "The baker starts work before dawn.",
    "You can see the hills from here.",
    "The letter arrived this morning.",
    "The phone rang during dinner.",
    "We planted tomatoes by the wall.",
    "The cat is sleeping on the chair.",
    "The bus was late again today.",
    "She keeps her notes in a yellow folder.",
    "The old mill stands by the stream.",
    "I will call you after the game.",
    "The printer on the second floor is fixed.",
    "They sold the house last summer.",
    "The box is heavier than it looks.",
    "He listens to the radio in the car.",
    "Our team won the match on Sunday.",
    "The river is high after the rain.",
    "She ordered a salad and some water.",
    "The museum has a new painting.",
    "The door to the office was locked.",
    "We counted the chairs in the hall.",
    "The film starts in ten minutes.",
    "My uncle grows apples on his farm.",
    "The stairs lead down to the cellar.",
    "The plane landed on time.",
    "He cleaned the windows yesterday.",
    "The market is busy on Fridays.",
    "The candle burned all through the night.",
)

EVAL_SENTENCES: tuple[str, ...] = (
    "The boat drifted slowly toward the shore.",
    "Your parcel will arrive on Tuesday.",
    "The light in the hallway keeps flickering.",
    "We had pasta and salad for dinner.",
    "The farmer fed the horses at noon.",
    "I found an old photo in the drawer.",
    "The path goes over the hill to the lake.",
    "She turned the music down a little.",
    "The guests are waiting in the garden.",
    "He parked the van behind the school.",
    "The snow melted before the weekend.",
    "Our kettle makes a funny noise.",
    "The report is due at the end of May.",
    "They left the party before midnight.",
    "The pencil rolled under the cupboard.",
)


def _jitter(rng: np.random.Generator, value: float, rel: float) -> float:
    return float(value * rng.uniform(1.0 - rel, 1.0 + rel))


def plan(label: str, split: str, rng: np.random.Generator) -> dict:
    """Random parameters of one clip of class label (voice, sentence, jittered prosody).

    Refuses (KeyError) an unknown label.
    """
    prof = PROFILES[label]
    sentences = EVAL_SENTENCES if split == "eval" else TRAIN_SENTENCES
    voice = PROSODY_VOICES[int(rng.integers(len(PROSODY_VOICES)))]
    f0 = _jitter(rng, voice.base_f0 * prof.f0, 0.08)
    return {
        "voice": voice.name,
        "engine": voice.engine,
        "sentence": int(rng.integers(len(sentences))),
        "f0_mean": f0,
        "f0_std": _jitter(rng, f0 * prof.spread, 0.25),
        "stretch": _jitter(rng, prof.stretch, 0.07),
        "cutoff_hz": None if prof.cutoff_hz is None else _jitter(rng, prof.cutoff_hz, 0.15),
        "brightness": max(0.0, prof.brightness + float(rng.uniform(-0.2, 0.2))),
        "drive": _jitter(rng, prof.drive, 0.2),
        "peak_db": float(rng.uniform(*prof.peak_db)),
    }


_HIGH_BAND = butter(2, 1500.0, btype="highpass", fs=SR, output="sos")


def render(params: dict, split: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The waveform of one emotion clip planned by plan(), and a one-line source note."""
    sentences = EVAL_SENTENCES if split == "eval" else TRAIN_SENTENCES
    voice = next(
        v for v in PROSODY_VOICES if v.name == params["voice"] and v.engine == params["engine"]
    )
    x = synthesise(
        voice,
        sentences[params["sentence"]],
        params["f0_mean"],
        params["f0_std"],
        params["stretch"],
    )
    x = trim_silence(x)
    if params["cutoff_hz"] is not None:
        x = lowpass(x, params["cutoff_hz"])
    if params["brightness"] > 0:
        # A pressed, tense voice has more energy in the upper formants.
        x = x + params["brightness"] * sosfilt(_HIGH_BAND, x)
    if params["drive"] > 1.0:
        # Soft clipping raises loudness at a fixed peak, like shouting into a microphone.
        d = params["drive"]
        x = np.tanh(d * x / np.max(np.abs(x))) / np.tanh(d)
    x = peak_normalise(fit_length(x, rng), params["peak_db"])
    source = f"{voice.engine}:{voice.name} sentence={split}:{params['sentence']}"
    return x, source
