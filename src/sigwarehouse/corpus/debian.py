"""Which Debian packages the corpus builder needs, whether they are present, how to get them.

Presence is probed by the files and programs each package ships (not by dpkg), so the
check also works on a non-Debian system that has the same files in the same places.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
ALSA_DIR = Path("/usr/share/sounds/alsa")
FESTIVAL_VOICES = Path("/usr/share/festival/voices/english")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@dataclass(frozen=True)
class Package:
    """A Debian package and one program or file whose presence proves it is installed."""

    name: str
    program: str | None = None
    path: Path | None = None

    def present(self) -> bool:
        if self.program is not None and shutil.which(self.program) is None:
            return False
        return self.path is None or self.path.exists()


FLITE = Package("flite", program="flite")
FESTIVAL = Package("festival", program="festival")
KAL = Package("festvox-kallpc16k", path=FESTIVAL_VOICES / "kal_diphone")
KED = Package("festvox-kdlpc16k", path=FESTIVAL_VOICES / "ked_diphone")
ESPEAK = Package("espeak-ng", program="espeak-ng")
FLUIDSYNTH = Package("fluidsynth", program="fluidsynth")
FLUID_GM = Package("fluid-soundfont-gm", path=SOUNDFONT)
ASTERISK = Package("asterisk-core-sounds-en-wav", path=ASTERISK_DIR / "cancelled.wav")
POCKETSPHINX = Package("pocketsphinx-testdata", path=POCKETSPHINX_DIR / "librivox")
ALSA = Package("alsa-utils", path=ALSA_DIR / "Front_Left.wav")

REQUIRED: dict[str, tuple[Package, ...]] = {
    "emotion": (FLITE, FESTIVAL, KAL, KED),
    "genre": (FLUIDSYNTH, FLUID_GM),
    "spoof": (ASTERISK, POCKETSPHINX, ALSA, FLITE, FESTIVAL, KAL, KED, ESPEAK),
}


class MissingPackagesError(RuntimeError):
    """Raised when Debian packages the requested tasks need are not installed."""

    def __init__(self, packages: list[str]):
        self.packages = packages
        super().__init__(
            f"missing Debian packages: {' '.join(packages)}; install them with: "
            f"{apt_command(packages)}"
        )


def missing_packages(tasks: list[str]) -> list[str]:
    """Names of the needed packages whose programs or files are absent (empty: all present)."""
    missing: list[str] = []
    for task in tasks:
        for pkg in REQUIRED[task]:
            if not pkg.present() and pkg.name not in missing:
                missing.append(pkg.name)
    return missing


def apt_command(packages: list[str]) -> str:
    """The exact shell command that installs the packages."""
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def install(packages: list[str]) -> None:
    """apt-get install the packages (runs `apt-get update` first).

    Refuses (PermissionError) when not root, because apt-get would fail anyway;
    raises CalledProcessError when apt-get fails.
    """
    if not packages:
        return
    if os.geteuid() != 0:
        raise PermissionError(f"installing needs root; run: sudo {apt_command(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(apt_command(packages).split(), check=True, env=env)
