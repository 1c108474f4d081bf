"""The speech / non-speech evaluation set of the `speech` task, drawn from the demo corpus.

Layout: <out>/eval/speech/*.flac, <out>/eval/non-speech/*.flac and <out>/manifest.csv
(the corpus manifest's columns; `source` says where each clip came from). 25 + 25 clips:

- speech: byte-identical copies of corpus eval clips: the first 3 of each emotion label
  (flite/festival speech) and the first 5 of spoof/real (human recordings) and
  spoof/fake (vocoded and synthetic speech);
- non-speech: copies of the first 2 clips of each genre (rendered music), and 15 clips
  rendered here from the seed: 5 tones (sines, a chord, a sweep, DTMF beeps), 5 noises
  (white, pink, brown, telephone-band, crackle) and 5 near-silences (16-bit dither,
  room tone at -70 to -50 dBFS, a faint mains hum): the corpus has no silent stretch of
  even half a second (its recordings are silence-trimmed).

Rebuild with `python -m sigwarehouse.corpus.speechset` (from the repository root): the
same corpus and seed give the same samples (and, with the same libFLAC, the same bytes).
"""

from __future__ import annotations

import hashlib
import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from sigwarehouse.corpus.build import read_manifest, write_manifest
from sigwarehouse.corpus.waveform import SR, peak_normalise, write_flac

LABELS = ("speech", "non-speech")
COPIED = {  # (corpus task, label) -> the first n eval clips of it
    ("emotion", "neutral"): 3,
    ("emotion", "calm"): 3,
    ("emotion", "happy"): 3,
    ("emotion", "sad"): 3,
    ("emotion", "angry"): 3,
    ("spoof", "real"): 5,
    ("spoof", "fake"): 5,
    ("genre", "classical"): 2,
    ("genre", "rock"): 2,
    ("genre", "jazz"): 2,
    ("genre", "electronic"): 2,
    ("genre", "ambient"): 2,
}
RENDERED = {"tone": 5, "noise": 5, "silence": 5}


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / np.sqrt(np.mean(x**2))


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    x = np.fft.irfft(np.where((f >= lo) & (f <= hi), spec, 0), n)
    return x / np.sqrt(np.mean(x**2))


def _at_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x**2)))


def render(kind: str, index: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One rendered non-speech clip (float64 at SR, 1-3 s) and its description."""
    n = int(round(rng.uniform(1.0, 3.0), 2) * SR)
    t = np.arange(n) / SR
    peak = rng.uniform(-20.0, -3.0)
    if kind == "tone":
        if index == 0:
            x, what = np.sin(2 * np.pi * 440 * t), "sine 440 Hz"
        elif index == 1:
            f0 = rng.uniform(200, 2000)
            x, what = np.sin(2 * np.pi * f0 * t), f"sine {f0:.0f} Hz"
        elif index == 2:
            root = rng.uniform(110, 330)
            ratios = (1.0, 1.26, 1.5)
            x = sum(np.sin(2 * np.pi * root * r * k * t) / k for r in ratios for k in (1, 2, 3))
            what = f"major triad on {root:.0f} Hz, 3 harmonics each"
        elif index == 3:
            f1 = rng.uniform(4000, 7000)
            phase = 2 * np.pi * (100 * t + (f1 - 100) * t**2 / (2 * t[-1]))
            x, what = np.sin(phase), f"linear sweep 100-{f1:.0f} Hz"
        else:
            rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
            x = np.zeros(n)
            digits = []
            for start in range(0, n, int(0.2 * SR)):
                lo, hi = rows[rng.integers(4)], cols[rng.integers(3)]
                digits.append(f"{lo}+{hi}")
                seg = slice(start, min(n, start + int(0.1 * SR)))
                x[seg] = np.sin(2 * np.pi * lo * t[seg]) + np.sin(2 * np.pi * hi * t[seg])
            what = f"DTMF beeps, 100 ms on / 100 ms off ({', '.join(digits[:3])}, ...)"
        return peak_normalise(x, peak), f"tone: {what}"
    if kind == "noise":
        if index < 3:
            x = _coloured(rng, n, float(index))
            what = ("white", "pink", "brown")[index]
        elif index == 3:
            x, what = _band(rng, n, 300, 3400), "telephone-band (300-3400 Hz)"
        else:
            x = _at_rms(rng.standard_normal(n), -50.0)
            clicks = rng.random(n) < 30 / SR  # about 30 clicks a second
            x[clicks] += rng.choice([-1.0, 1.0], clicks.sum()) * rng.uniform(0.05, 0.5)
            what = "crackle (about 30 random clicks a second over -50 dBFS hiss)"
        return peak_normalise(x, peak), f"noise: {what}"
    if kind == "silence":
        if index == 0:
            x = (rng.uniform(-0.5, 0.5, n) + rng.uniform(-0.5, 0.5, n)) / 32768
            return x, "silence: 16-bit TPDF dither only"
        if index in (1, 2, 3):
            level, exponent = ((-70.0, 0.0), (-60.0, 1.0), (-50.0, 2.0))[index - 1]
            colour = ("white", "pink", "brown")[index - 1]
            x = _at_rms(_coloured(rng, n, exponent), level)
            return x, f"silence: room tone, {colour} noise at {level:.0f} dBFS RMS"
        mains = rng.choice([50.0, 60.0])
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
        x = _at_rms(hum, -55.0) + _at_rms(rng.standard_normal(n), -75.0)
        return x, f"silence: {mains:.0f} Hz mains hum at -55 dBFS RMS over -75 dBFS hiss"
    raise KeyError(kind)


def _seed(seed: int, kind: str, index: int) -> int:
    key = [seed, zlib.crc32(b"speechset"), zlib.crc32(kind.encode()), index]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def _row(out: Path, rel: str, label: str, source: str, seed: str | int) -> dict:
    path = out / "eval" / rel
    return {
        "task": "speech",
        "split": "eval",
        "label": label,
        "path": f"eval/{rel}",
        "source": source,
        "seed": str(seed),
        "duration_s": f"{sf.info(str(path)).frames / SR:.4f}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def build_speech_set(
    corpus: str | Path = "data/corpus", out: str | Path = "data/speech", seed: int = 0
) -> list[dict]:
    """Write the set under `out` from the corpus eval split at `corpus`; return the
    manifest rows (also written to <out>/manifest.csv). Files a previous build wrote are
    replaced. Raises FileNotFoundError when a corpus clip it copies is missing."""
    corpus, out = Path(corpus), Path(out)
    for label in LABELS:
        for f in (out / "eval" / label).glob("*.flac"):
            f.unlink()
    by_source = {r["path"]: r for r in read_manifest(corpus / "manifest.csv")}
    rows = []
    for (task, label), n in COPIED.items():
        target = "non-speech" if task == "genre" else "speech"
        for i in range(n):
            rel_src = f"{task}/eval/{label}/{label}_{i:03d}.flac"
            rel = f"{target}/{task}_{label}_{i:03d}.flac"
            (out / "eval" / target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus / rel_src, out / "eval" / rel)
            origin = by_source.get(rel_src, {}).get("source", "?")
            rows.append(_row(out, rel, target, f"copy of corpus {rel_src} ({origin})", ""))
    for kind, n in RENDERED.items():
        for i in range(n):
            s = _seed(seed, kind, i)
            wave, what = render(kind, i, np.random.default_rng(s))
            rel = f"non-speech/{kind}_{i:03d}.flac"
            write_flac(out / "eval" / rel, wave)
            rows.append(_row(out, rel, "non-speech", what, s))
    rows.sort(key=lambda r: (LABELS.index(r["label"]), r["path"]))
    write_manifest(out / "manifest.csv", rows)
    return rows


if __name__ == "__main__":
    written = build_speech_set()
    print(f"wrote {len(written)} clips under data/speech")
