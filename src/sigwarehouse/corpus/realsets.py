"""Evaluation sets of real recordings for the `gender` and `speech-music` tasks.

Layout: <out>/eval/<label>/NN_<source>.flac and <out>/manifest.csv (the corpus manifest's
columns; `source` names the package, file, licence, speaker and whether it is real or
rendered). The two-digit prefix fixes the order, and the order matters: the demo registers
the first few clips of each label, so the real recordings of the most distinct speakers
and instruments come first and the copies of rendered corpus clips come last.

Sources (Debian packages, read where Debian installs them; licences from each package's
`/usr/share/doc/<package>/copyright`):

- Asterisk prompts, 8 kHz recordings of professional voices. The voice's gender is in
  the directory name Asterisk gives it (`en_US_f_Allison`, `it_IT_m_Carlo`, ...).
- pocketsphinx-testdata: CMU test utterances and five LibriVox sentences (one reader).
  The package does not say who speaks; every file's median F0 is 81-119 Hz (measured
  here, see ATTRIBUTION.md), so they are labelled male. Every other one is passed through
  an 8 kHz channel (band-limited to 4 kHz) like the 8 kHz female prompts, so that
  bandwidth alone does not separate the gender labels.
- asterisk-moh-opsound-wav: five music-on-hold tracks (8 kHz), crops from inside them.
- sonic-pi-samples: CC0 recordings of guitar, piano and percussion loops (freesound.org).
- copies of rendered corpus clips (flite / festival voices of known gender; MIDI music).

Rebuild with `python -m sigwarehouse.corpus.realsets` (from the repository root, with the
packages in `PACKAGES` installed): the same packages and seed give the same samples.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sigwarehouse.corpus.build import read_manifest, write_manifest
from sigwarehouse.corpus.debian import POCKETSPHINX_DIR as SPHINX
from sigwarehouse.corpus.debian import MissingPackagesError, Package
from sigwarehouse.corpus.waveform import (
    SR,
    load_mono,
    load_raw16,
    peak_normalise,
    telephone,
    trim_silence,
    write_flac,
)

SOUNDS = Path("/usr/share/asterisk/sounds")
MOH = Path("/usr/share/asterisk/moh")
SONIC_PI = Path("/usr/share/sonic-pi/samples")
SONIC_PI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")


@dataclass(frozen=True)
class Voice:
    """A recorded voice: where its files are, which package ships them, under which licence."""

    package: str
    directory: Path
    licence: str
    speaker: str
    gender: str


VOICES = {
    "allison-en": Voice(
        "asterisk-core-sounds-en-wav",
        SOUNDS / "en_US_f_Allison",
        "CC BY-SA 3.0",
        "Allison Smith",
        "female",
    ),
    "allison-es": Voice(
        "asterisk-core-sounds-es-wav",
        SOUNDS / "es_MX_f_Allison",
        "CC BY-SA 3.0",
        "Allison Smith",
        "female",
    ),
    "june-fr": Voice(
        "asterisk-core-sounds-fr-wav",
        SOUNDS / "fr_CA_f_June",
        "CC BY-SA 3.0",
        "June Wallack",
        "female",
    ),
    "ivrvoice-ru": Voice(
        "asterisk-core-sounds-ru-wav",
        SOUNDS / "ru_RU_f_IvrvoiceRU",
        "CC BY 3.0",
        "ivrvoice.ru (provided by Maxim Topal)",
        "female",
    ),
    "menardi-it": Voice(
        "asterisk-prompt-it-menardi-wav",
        SOUNDS / "it_IT_f_Menardi",
        "CC BY-SA 3.0 (Italy)",
        "Marco Menardi and Paola Dal Zot's prompts",
        "female",
    ),
    # Named male by Asterisk; its median F0 (about 195 Hz, measured here) is female-typical,
    # so without a listening check it is used only as speech, never as a gender label.
    "carlo-it": Voice(
        "asterisk-core-sounds-it-wav",
        SOUNDS / "it_IT_m_Carlo",
        "CC BY 3.0",
        "Carlo Flora",
        "unlabelled",
    ),
}
# name -> (files, licence); each group is one male voice by median F0 (81-119 Hz)
SPHINX_FILES = {
    "librivox": (
        [f"librivox/sense_and_sensibility_01_austen_64kb-0{n}0.wav" for n in (87, 88, 89, 92, 93)],
        "public domain (LibriVox reading, shipped in the BSD-2 package)",
    ),
    "cards": ([f"cards/00{i}.wav" for i in range(1, 6)], "BSD-2, CMU"),
    "cmu": (["goforward.raw", "numbers.raw", "something.raw"], "BSD-2, CMU"),
}
MOH_TRACKS = (  # artist-title.wav, all CC BY-SA 3.0 (asterisk-moh-opsound-wav/copyright)
    "macroform-cold_day",
    "manolo_camp-morning_coffee",
    "reno_project-system",
    "macroform-robot_dity",
    "macroform-the_simplicity",
)
INSTRUMENTS = (  # sonic-pi-samples recordings of real instruments (licence read per file)
    "guit_em9",
    "ambi_piano",
    "loop_tabla",
    "guit_e_fifths",
    "loop_amen_full",
    "guit_harmonics",
    "loop_safari",
)

# Each list is the order of one label's clips: (kind, name) drawn in turn.
GENDER = {
    "female": [("voice", v) for v in ("allison-en", "june-fr", "ivrvoice-ru", "allison-es")]
    + [("voice", v) for v in ("allison-en", "june-fr", "ivrvoice-ru", "menardi-it")]
    + [("voice", v) for v in ("allison-en", "june-fr", "ivrvoice-ru", "menardi-it")]
    + [("copy", "emotion/eval/neutral/neutral_002.flac")]  # flite slt
    + [("copy", "emotion/eval/happy/happy_000.flac")]  # flite slt
    + [("copy", "emotion/eval/calm/calm_009.flac")],  # flite slt
    # every other male recording through an 8 kHz channel, as the female prompts are
    # recorded, so that bandwidth alone does not tell the labels apart
    "male": [
        ("sphinx" if i % 2 == 0 else "sphinx8k", s)
        for i, s in enumerate(
            ("librivox", "cards", "cmu", "librivox", "cards", "cmu")
            + ("librivox", "cards", "cmu", "librivox", "cards", "librivox")
        )
    ]
    + [("copy", "emotion/eval/neutral/neutral_000.flac")]  # flite kal16
    + [("copy", "emotion/eval/neutral/neutral_005.flac")]  # flite awb
    + [("copy", "emotion/eval/neutral/neutral_007.flac")],  # festival ked_diphone
}
SPEECH_MUSIC = {
    "speech": [("voice", "allison-en"), ("sphinx", "librivox"), ("voice", "carlo-it")]
    + [("voice", "june-fr"), ("voice", "ivrvoice-ru"), ("sphinx", "cards")]
    + [("voice", "allison-es"), ("sphinx", "cmu"), ("voice", "menardi-it")]
    + [("voice", "carlo-it"), ("sphinx", "librivox"), ("voice", "allison-en")]
    + [("copy", "emotion/eval/neutral/neutral_001.flac")]  # festival kal_diphone
    + [("copy", "emotion/eval/neutral/neutral_002.flac")]  # flite slt
    + [("copy", "spoof/eval/fake/fake_010.flac")],  # espeak-ng
    "music": [("moh", MOH_TRACKS[0]), ("instrument", INSTRUMENTS[0])]
    + [("moh", MOH_TRACKS[1]), ("instrument", INSTRUMENTS[1])]
    + [("moh", MOH_TRACKS[2]), ("instrument", INSTRUMENTS[2])]
    + [("moh", MOH_TRACKS[3]), ("instrument", INSTRUMENTS[3])]
    + [("moh", MOH_TRACKS[4]), ("instrument", INSTRUMENTS[4])]
    + [("instrument", INSTRUMENTS[5]), ("instrument", INSTRUMENTS[6])]
    + [("copy", "genre/eval/classical/classical_000.flac")]  # fluidsynth renders
    + [("copy", "genre/eval/jazz/jazz_000.flac")]
    + [("copy", "genre/eval/rock/rock_000.flac")],
}
SETS = {"gender": GENDER, "speech-music": SPEECH_MUSIC}
OUT = {"gender": "data/gender", "speech-music": "data/speech-music"}

PACKAGES = tuple(
    Package(name, path=path)
    for name, path in (
        *((v.package, v.directory) for v in VOICES.values()),
        ("pocketsphinx-testdata", SPHINX / "librivox"),
        ("asterisk-moh-opsound-wav", MOH / f"{MOH_TRACKS[0]}.wav"),
        ("sonic-pi-samples", SONIC_PI / f"{INSTRUMENTS[0]}.flac"),
    )
)


def sonic_pi_licence(name: str) -> str:
    """The licence and author the Debian copyright file gives for one sample (DEP-5 stanza)."""
    text = SONIC_PI_COPYRIGHT.read_text()
    stanza = re.search(
        rf"^Files: etc/samples/{re.escape(name)}\.flac\n(.*?)(?:\n\n|\Z)", text, re.M | re.S
    )
    if stanza is None:
        raise ValueError(f"{SONIC_PI_COPYRIGHT}: no stanza for {name}.flac; choose another sample")
    fields = dict(re.findall(r"^(Copyright|License): *(.*)$", stanza.group(1), re.M))
    return f"{fields.get('License', '?')}, {fields.get('Copyright', '?')}"


def _seed(seed: int, task: str, label: str, index: int) -> int:
    key = [
        seed,
        zlib.crc32(b"realsets"),
        zlib.crc32(task.encode()),
        zlib.crc32(label.encode()),
        index,
    ]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def _crop(x: np.ndarray, rng: np.random.Generator, max_s: float) -> np.ndarray:
    n = min(len(x), int(round(rng.uniform(1.5, max_s), 2) * SR))
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n]


class _Draw:
    """Hands out each source's files in a seeded order, so no file is used twice in a set."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.queues: dict[str, list[str]] = {}

    def next(self, key: str, files: list[str]) -> str:
        if key not in self.queues:
            self.queues[key] = [files[i] for i in self.rng.permutation(len(files))]
        if not self.queues[key]:
            raise ValueError(f"source {key} has no unused file left; draw it fewer times")
        return self.queues[key].pop(0)


def _voice_files(voice: Voice) -> list[str]:
    # prompts long enough for a 1.5 s crop once trimmed (checked again after trimming)
    return [
        p.name for p in sorted(voice.directory.glob("*.wav")) if sf.info(str(p)).duration >= 2.0
    ]


def _render(kind: str, name: str, draw: _Draw, rng: np.random.Generator, corpus: Path):
    """(waveform or None for a byte copy, corpus path for a copy, source description)."""
    if kind == "copy":
        origin = {r["path"]: r["source"] for r in read_manifest(corpus / "manifest.csv")}
        return None, corpus / name, f"copy of corpus {name} ({origin.get(name, '?')}; rendered)"
    if kind == "voice":
        v = VOICES[name]
        f = draw.next(name, _voice_files(v))
        x = trim_silence(load_mono(v.directory / f))
        what = f"{v.package}:{v.directory.name}/{f} [{v.licence}; {v.speaker}, {v.gender}; real]"
    elif kind in ("sphinx", "sphinx8k"):
        files, licence = SPHINX_FILES[name]
        f = draw.next(name, files)
        path = SPHINX / f
        x = trim_silence(load_raw16(path) if f.endswith(".raw") else load_mono(path))
        channel = ""
        if kind == "sphinx8k":
            x, channel = telephone(x), ", through an 8 kHz channel"
        what = f"pocketsphinx-testdata:{f}{channel} [{licence}; male by F0; real]"
    elif kind == "moh":
        x = load_mono(MOH / f"{name}.wav")
        # skip each track's first and last 10 s (fades)
        x = x[10 * SR : -10 * SR]
        what = f"asterisk-moh-opsound-wav:{name}.wav [CC BY-SA 3.0; 8 kHz recording; real]"
    elif kind == "instrument":
        x = trim_silence(load_mono(SONIC_PI / f"{name}.flac"))
        what = f"sonic-pi-samples:{name}.flac [{sonic_pi_licence(name)}; real]"
    else:
        raise KeyError(kind)
    if len(x) < 1.0 * SR:
        raise ValueError(f"{what}: only {len(x) / SR:.2f} s after trimming; choose another file")
    x = _crop(x, rng, 4.0)
    return peak_normalise(x, rng.uniform(-12.0, -3.0)), None, what


def missing_packages() -> list[str]:
    """Names of the Debian packages the sets are built from that are not installed."""
    return [p.name for p in PACKAGES if not p.present()]


def build_set(
    task: str, corpus: str | Path = "data/corpus", out: str | Path | None = None, seed: int = 0
) -> list[dict]:
    """Write the `task` set ("gender" or "speech-music") under `out`; return the manifest rows
    (also written to <out>/manifest.csv). Files a previous build wrote are replaced. Raises
    MissingPackagesError (naming the apt command) when a source package is absent."""
    missing = missing_packages()
    if missing:
        raise MissingPackagesError(missing)
    corpus, out = Path(corpus), Path(out or OUT[task])
    labels = SETS[task]
    for label in labels:
        for f in (out / "eval" / label).glob("*.flac"):
            f.unlink()
    rows = []
    for label, plan in labels.items():
        draw = _Draw(_seed(seed, task, f"{label}/order", 0))
        for i, (kind, name) in enumerate(plan):
            s = _seed(seed, task, label, i)
            wave, copy_from, what = _render(kind, name, draw, np.random.default_rng(s), corpus)
            tag = Path(name).stem if kind == "copy" else name
            rel = f"{label}/{i:02d}_{kind}_{tag}.flac"
            path = out / "eval" / rel
            if copy_from is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(copy_from, path)
            else:
                write_flac(path, wave)
            rows.append(
                {
                    "task": task,
                    "split": "eval",
                    "label": label,
                    "path": f"eval/{rel}",
                    "source": what,
                    "seed": "" if copy_from is not None else str(s),
                    "duration_s": f"{sf.info(str(path)).frames / SR:.4f}",
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                }
            )
    write_manifest(out / "manifest.csv", rows)
    return rows


if __name__ == "__main__":
    for name in SETS:
        written = build_set(name)
        print(f"wrote {len(written)} clips under {OUT[name]}")
