"""The demo warehouse the test suite builds (tests/test_demo.py's fixture, and the
README's quoted examples: tests/readme_examples.py): `sigwh demo` on a small catalog, the
shipped spoof clips (three of each label; the demo explains a sample, here one of each)
with one zoo model, and the speech task's clips with two of its pretrained detectors
(WebRTC and Earshot, the fast ones), with the light freqrex parameters of test_ingest
(the demo's own, the "quick" preset, take a minute per model on two cores). The demo
registers the first clip of each label in path order, the same clips `make demo`
registers.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from light_params import PARAMS

from sigwarehouse.cli.demo import run_demo

REPO = Path(__file__).resolve().parents[1]
# a Hugging Face zoo model (kind "hf": the demo's jobs load it from the demo's catalog)
# that gives silence "fake", so the demo has a real composite to apply
MODEL = "sp5"
DETECTORS = ("earshot", "webrtc")
CLIPS_PER_LABEL = 3


def catalog(root: Path) -> Path:
    """A catalog of the spoof task, a copy of three clips of each label, and MODEL."""
    cat = root / "catalog"
    (cat / "datasets").mkdir(parents=True)
    (cat / "models").mkdir()
    for label in ("real", "fake"):
        (root / "audio" / label).mkdir(parents=True)
        files = sorted((REPO / "data/corpus/spoof/eval" / label).glob("*.flac"))
        for f in files[:CLIPS_PER_LABEL]:
            shutil.copy(f, root / "audio" / label / f.name)
    (cat / "tasks.toml").write_text('[spoof]\nlabels = ["real", "fake"]\nsample_rate = 16000\n')
    (cat / "datasets" / "spoof-eval.toml").write_text(
        f'name = "spoof-eval"\ntask = "spoof"\nroot = "{root / "audio"}"\n'
    )
    (cat / "models" / "spoof.toml").write_text(
        f'[[model]]\nid = "{MODEL}"\ntask = "spoof"\nkind = "hf"\n'
        f'ref = "{REPO / "data/zoo/spoof" / MODEL}"\nlabels = ["real", "fake"]\n'
    )
    # the speech task as the shipped catalog has it, with two of its detectors
    with (cat / "tasks.toml").open("a") as f:
        f.write('[speech]\nlabels = ["speech", "non-speech"]\nsample_rate = 16000\n')
    for label in ("speech", "non-speech"):
        (root / "speech" / label).mkdir(parents=True)
        for f in sorted((REPO / "data/speech/eval" / label).glob("*.flac"))[:CLIPS_PER_LABEL]:
            shutil.copy(f, root / "speech" / label / f.name)
    (cat / "datasets" / "speech-eval.toml").write_text(
        f'name = "speech-eval"\ntask = "speech"\nroot = "{root / "speech"}"\n'
    )
    shipped = (REPO / "ingest/models/speech.toml").read_text().split("[[model]]")
    (cat / "models" / "speech.toml").write_text(
        "".join(f"[[model]]{entry}" for entry in shipped[1:] if entry.split('"')[1] in DETECTORS)
    )
    return cat


def demo(root: Path, workers: int = 1) -> tuple[list[str], str]:
    """Run the demo into root; its lines, and what it wrote on stderr. One worker by
    default: the models one after another, each with its progress bar."""
    lines: list[str] = []
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        run_demo(
            root / "warehouse.duckdb",
            root / "catalog",
            root / "report",
            params=PARAMS,
            per_label=1,
            say=lines.append,
            workers=workers,
        )
    return lines, err.getvalue()


def build(root: Path) -> tuple[Path, list[str], str]:
    """The catalog and the demo in `root`: (warehouse path, the demo's lines, its stderr)."""
    catalog(root)
    lines, err = demo(root)
    return root / "warehouse.duckdb", lines, err
