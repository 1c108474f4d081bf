"""Files a model reads, pinned by their SHA-256 and checked before use.

A pretrained model's weights (or the native library that runs them) come from a wheel
or from this repository; a file of another build or version is refused with one line
naming it, both hashes and what to do, rather than measured silently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def checked_bytes(path: Path, expected: str, fix: str) -> bytes:
    """The file's bytes if their SHA-256 is `expected`; else ValueError naming the file,
    the hash found and the one expected, and `fix`."""
    if not path.is_file():
        raise ValueError(f"{path}: not found; {fix}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(f"{path}: SHA-256 {digest} is not {expected}; {fix}")
    return data
