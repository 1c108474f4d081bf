"""The shipped demo corpus: emotion-like speech, genre-like music and spoofed speech.

Built offline and deterministically from Debian packages (see `debian.py`); the
entry point is `build_corpus`. Heavy work happens only when a build runs.
"""

from sigwarehouse.corpus.build import TASKS, build_corpus

__all__ = ["TASKS", "build_corpus"]
