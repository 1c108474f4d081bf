"""Genre-like music: five styles written as MIDI with mido and rendered by fluidsynth.

Per style the tempo range, metre, rhythm patterns, instrumentation (General MIDI
programs) and harmony differ; inside a style every clip draws its key, tempo,
progression, instruments, pattern variants, velocities and a little timing jitter.
The soundfont is FluidR3_GM (MIT licence, Debian's fluid-soundfont-gm).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import mido
import numpy as np

from sigwarehouse.corpus.debian import SOUNDFONT
from sigwarehouse.corpus.waveform import SR, load_mono, lowpass, peak_normalise

LABELS: tuple[str, ...] = ("classical", "rock", "jazz", "electronic", "ambient")

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DRUMS = 9  # General MIDI percussion channel
KICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 39, 42, 44, 46, 49, 51
TPB = 480  # MIDI ticks per beat


class Song:
    """Notes collected in beats, turned into a one-track MIDI file."""

    def __init__(self, rng: np.random.Generator, bpm: float, jitter_beats: float = 0.0):
        self.rng = rng
        self.bpm = bpm
        self.jitter = jitter_beats
        self.programs: dict[int, int] = {}
        self.notes: list[tuple[float, float, int, int, int]] = []  # start, dur, ch, note, vel

    def program(self, channel: int, program: int) -> None:
        self.programs[channel] = program

    def note(self, start: float, dur: float, channel: int, pitch: int, vel: float) -> None:
        if self.jitter:
            start = max(0.0, start + float(self.rng.normal(0.0, self.jitter)))
        vel = int(np.clip(vel + self.rng.normal(0.0, 6.0), 1, 127))
        self.notes.append((start, dur, channel, int(np.clip(pitch, 0, 127)), vel))

    def chord(self, start: float, dur: float, channel: int, pitches: list[int], vel: float) -> None:
        for p in pitches:
            self.note(start, dur, channel, p, vel)

    def midi(self) -> mido.MidiFile:
        events: list[tuple[int, int, mido.Message]] = []
        for ch, prog in sorted(self.programs.items()):
            events.append((0, 0, mido.Message("program_change", channel=ch, program=prog)))
        for start, dur, ch, pitch, vel in self.notes:
            on, off = round(start * TPB), round((start + dur) * TPB)
            events.append((on, 2, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
            off_msg = mido.Message("note_off", channel=ch, note=pitch, velocity=0)
            events.append((max(off, on + 1), 1, off_msg))
        events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at equal ticks
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm))])
        now = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        out = mido.MidiFile(ticks_per_beat=TPB)
        out.tracks.append(track)
        return out


def _triad(scale: tuple[int, ...], degree: int, root: int, sevenths: bool = False) -> list[int]:
    steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
    out = []
    for s in steps:
        i = degree + s
        out.append(root + scale[i % 7] + 12 * (i // 7))
    return out


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def classical(rng: np.random.Generator, bars: int) -> Song:
    """Diatonic triads one per bar, melody over Alberti bass or sustained strings; no drums."""
    song = Song(rng, float(rng.uniform(60, 100)), jitter_beats=0.02)
    beats = int(_pick(rng, (3, 4)))
    scale = MAJOR if rng.random() < 0.7 else MINOR
    key = 48 + int(rng.integers(12))
    prog = _pick(rng, ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4), (0, 1, 4, 0)))
    texture = _pick(rng, ("piano", "strings", "harp"))
    melody_ch, accomp_ch = 0, 1
    if texture == "piano":
        song.program(melody_ch, 0)
        song.program(accomp_ch, 0)
    elif texture == "strings":
        song.program(melody_ch, int(_pick(rng, (40, 73, 68, 71))))  # violin, flute, oboe, clarinet
        song.program(accomp_ch, int(_pick(rng, (48, 49, 45))))  # ensembles, pizzicato
    else:
        song.program(melody_ch, int(_pick(rng, (42, 40, 73))))  # cello, violin, flute
        song.program(accomp_ch, 46)  # harp
    step = 0
    for bar in range(bars):
        chord = _triad(scale, prog[bar % len(prog)], key)
        t0 = bar * beats
        if texture == "strings":
            song.chord(t0, beats, accomp_ch, chord + [chord[0] - 12], 55)
        else:
            alberti = [chord[0], chord[2], chord[1], chord[2]]
            for k in range(beats * 2):
                song.note(t0 + k / 2, 0.5, accomp_ch, alberti[k % 4], 48)
        t = 0.0
        while t < beats:
            dur = float(_pick(rng, (0.5, 0.5, 1.0, 1.0, 1.5)))
            step = int(np.clip(step + rng.integers(-2, 3), -3, 9))
            pitch = key + 12 + scale[step % 7] + 12 * (step // 7)
            song.note(t0 + t, min(dur, beats - t) * 1.05, melody_ch, pitch, 70)
            t += dur
    return song


def rock(rng: np.random.Generator, bars: int) -> Song:
    """Power chords in driving eighths, root bass, kick/snare backbeat with hi-hat eighths."""
    song = Song(rng, float(rng.uniform(105, 150)), jitter_beats=0.01)
    key = 40 + int(rng.integers(12))
    prog = _pick(rng, ((0, 10, 5, 0), (0, 7, 9, 5), (9, 5, 0, 7), (0, 5, 7, 5), (0, 3, 5, 3)))
    song.program(
        0, int(_pick(rng, (29, 30, 29, 30, 27, 18)))
    )  # overdrive, distortion, clean, organ
    song.program(1, int(_pick(rng, (33, 34))))  # finger / pick bass
    kick_extra = bool(rng.random() < 0.5)
    for bar in range(bars):
        root = key + prog[bar % len(prog)]
        t0 = bar * 4
        for k in range(8):
            accent = 100 if k % 2 == 0 else 82
            song.chord(t0 + k / 2, 0.45, 0, [root + 12, root + 19, root + 24], accent)
            song.note(t0 + k / 2, 0.45, 1, root, 95)
            song.note(t0 + k / 2, 0.25, DRUMS, HAT, 70 if k % 2 else 90)
        for b in (0, 2):
            song.note(t0 + b, 0.25, DRUMS, KICK, 110)
        if kick_extra:
            song.note(t0 + 2.5, 0.25, DRUMS, KICK, 95)
        for b in (1, 3):
            song.note(t0 + b, 0.25, DRUMS, SNARE, 110)
        if bar % 4 == 0:
            song.note(t0, 1.0, DRUMS, CRASH, 100)
    return song


def jazz(rng: np.random.Generator, bars: int) -> Song:
    """Seventh chords (ii-V-I style), walking bass, swung ride cymbal, syncopated comping."""
    song = Song(rng, float(rng.uniform(100, 180)), jitter_beats=0.015)
    key = 36 + int(rng.integers(12))
    prog = _pick(rng, ((1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4), (1, 4, 0, 0)))
    song.program(0, int(_pick(rng, (0, 4, 26))))  # piano, electric piano, jazz guitar
    song.program(1, 32)  # acoustic bass
    lead = bool(rng.random() < 0.6)
    if lead:
        song.program(2, int(_pick(rng, (65, 66, 56, 11))))  # alto/tenor sax, trumpet, vibes
    swing = float(rng.uniform(0.62, 0.7))  # share of the beat before the swung eighth
    for bar in range(bars):
        deg = prog[bar % len(prog)]
        chord = _triad(MAJOR, deg, key, sevenths=True)
        nxt = _triad(MAJOR, prog[(bar + 1) % len(prog)], key)[0]
        t0 = bar * 4
        walk = [chord[0], chord[1 + int(rng.integers(2))], chord[2], nxt + int(_pick(rng, (-1, 1)))]
        for b, p in enumerate(walk):
            song.note(t0 + b, 0.9, 1, p, 85)
        voicing = [p + 12 for p in chord[1:]] + [chord[0] + 26]  # rootless: 3-5-7-9
        for hit in _pick(rng, ((1 + swing, 3 + swing), (0, 2 + swing), (1.0, 2 + swing, 3.0))):
            song.chord(t0 + hit, 0.4, 0, voicing, 62)
        for b in range(4):
            song.note(t0 + b, 0.3, DRUMS, RIDE, 80)
            if b % 2 == 1:
                song.note(t0 + b + swing, 0.2, DRUMS, RIDE, 65)
                song.note(t0 + b, 0.2, DRUMS, PEDAL_HAT, 60)
        if lead:
            for e in range(8):
                if rng.random() < 0.7:
                    t = t0 + e // 2 + (swing if e % 2 else 0.0)
                    p = int(_pick(rng, tuple(chord))) + 24 + int(_pick(rng, (0, 0, 2, -1)))
                    song.note(t, 0.3, 2, p, 78)
    return song


def electronic(rng: np.random.Generator, bars: int) -> Song:
    """Four-on-the-floor kick, offbeat synth bass, sixteenth-note arpeggio, minor key."""
    song = Song(rng, float(rng.uniform(118, 135)))
    key = 33 + int(rng.integers(12))
    prog = _pick(rng, ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 0, 5, 6)))
    song.program(0, int(_pick(rng, (80, 81, 84, 87))))  # square, saw, charang, bass+lead
    song.program(1, int(_pick(rng, (38, 39))))  # synth bass
    pad = bool(rng.random() < 0.5)
    if pad:
        song.program(2, int(_pick(rng, (89, 90, 95))))
    hat_16 = bool(rng.random() < 0.5)
    breakdown = bool(rng.random() < 0.25)  # no kick: pads and arpeggio only
    for bar in range(bars):
        chord = _triad(MINOR, prog[bar % len(prog)], key)
        t0 = bar * 4
        arp = [p + 24 for p in chord] + [chord[0] + 36]
        order = _pick(rng, ((0, 1, 2, 3), (0, 2, 1, 3), (3, 2, 1, 0)))
        for s in range(16):
            song.note(t0 + s / 4, 0.22, 0, arp[order[s % 4]], 80 if s % 4 == 0 else 64)
            if hat_16:
                song.note(t0 + s / 4, 0.1, DRUMS, HAT, 75 if s % 2 else 55)
        for b in range(4):
            if not breakdown:
                song.note(t0 + b, 0.25, DRUMS, KICK, 118)
            song.note(t0 + b + 0.5, 0.45, 1, chord[0], 100)
            if not hat_16:
                song.note(t0 + b + 0.5, 0.25, DRUMS, OPEN_HAT, 80)
        for b in (1, 3):
            song.note(t0 + b, 0.25, DRUMS, CLAP, 95)
        if pad:
            song.chord(t0, 4.0, 2, [p + 12 for p in chord], 45)
    return song


def ambient(rng: np.random.Generator, bars: int) -> Song:
    """Slow sustained pad chords (sus2/add9), a low drone and sparse bell notes; no drums."""
    song = Song(rng, float(rng.uniform(50, 75)), jitter_beats=0.1)
    key = 48 + int(rng.integers(12))
    scale = MAJOR if rng.random() < 0.5 else MINOR
    song.program(0, int(_pick(rng, (88, 89, 91, 92, 94, 95, 52))))  # pads, choir
    song.program(1, int(_pick(rng, (8, 11, 14, 98, 112, 0, 4))))  # bells, crystal, pianos
    song.program(2, int(_pick(rng, (48, 89, 92))))  # drone
    prog = _pick(rng, ((0, 5), (0, 3), (5, 3), (0, 4)))
    song.note(0, bars * 4, 2, key - 12, 50)
    for bar in range(0, bars, 2):
        deg = prog[(bar // 2) % len(prog)]
        r = key + scale[deg % 7]
        voicing = _pick(rng, ((0, 2, 7, 14), (0, 7, 14, 16), (0, 5, 7, 12)))
        song.chord(bar * 4, 8.5, 0, [r + v for v in voicing], 60)
    for _ in range(int(rng.integers(2, 6))):
        t = float(rng.uniform(0, bars * 4))
        p = key + 24 + scale[int(rng.integers(7))]
        song.note(t, 3.0, 1, p, 55)
    return song


GENRES: dict[str, Callable[[np.random.Generator, int], Song]] = {
    "classical": classical,
    "rock": rock,
    "jazz": jazz,
    "electronic": electronic,
    "ambient": ambient,
}
# Per-style reverb (room size, level): rooms for acoustic styles, dry club mixes.
REVERB = {
    "classical": (0.7, 0.6),
    "rock": (0.4, 0.3),
    "jazz": (0.3, 0.3),
    "electronic": (0.2, 0.2),
    "ambient": (0.95, 0.9),
}


def render_midi(midi: mido.MidiFile, room: float, level: float) -> np.ndarray:
    """The MIDI file rendered by fluidsynth with FluidR3_GM, as a 16 kHz mono waveform.

    Raises RuntimeError when fluidsynth fails.
    """
    with tempfile.TemporaryDirectory(prefix="sigwh-midi-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.save(str(mid))
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(SR), "-O", "float", "-T", "wav"]
        cmd += ["-g", "0.4", "-o", f"synth.reverb.room-size={room:.2f}"]
        cmd += ["-o", f"synth.reverb.level={level:.2f}", "-F", str(wav), str(SOUNDFONT), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr[:500]}")
        return load_mono(wav)


def _master(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class-independent production variation: bandwidth, hiss and level.

    Applied with the same odds to every style, so it is nuisance a classifier must ignore
    (the way real recordings differ in mastering and source quality).
    """
    if rng.random() < 0.4:
        x = lowpass(x, float(rng.uniform(3500.0, 7000.0)))
    x = peak_normalise(x, 0.0)
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, 10 ** (float(rng.uniform(-60.0, -40.0)) / 20), len(x))
    return peak_normalise(x, float(rng.uniform(-6.0, -1.0)))


def plan(label: str, split: str, rng: np.random.Generator) -> dict:
    """Clip length and crop offset (s) of one clip of style label; KeyError if unknown."""
    GENRES[label]  # noqa: B018 - validate the label early
    return {"seconds": float(rng.uniform(2.5, 3.5)), "offset": float(rng.uniform(0.3, 1.5))}


def render(
    label: str, params: dict, split: str, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """The waveform of one music clip of style label, and a one-line source note."""
    n = round(params["seconds"] * SR)
    start = round(params["offset"] * SR)
    # Write enough bars to cover the crop even at the slowest tempo of any style.
    song = GENRES[label](rng, bars=int(np.ceil((params["offset"] + params["seconds"]) / 3.0)) + 2)
    room, level = REVERB[label]
    x = render_midi(song.midi(), room, level)
    if len(x) < start + n:
        x = np.pad(x, (0, start + n - len(x)))
    x = _master(x[start : start + n], rng)
    progs = ",".join(str(p) for _, p in sorted(song.programs.items()))
    return x, f"fluidsynth:FluidR3_GM bpm={song.bpm:.0f} programs={progs}"
