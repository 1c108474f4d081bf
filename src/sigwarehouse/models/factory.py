"""`kind = "python"`: any model behind a factory, `ref = "package.module:factory"`.

This module (torch-free, so `sigwh catalog sync` can read a factory's labels cheaply)
imports and checks factories and their outputs; `models/python.py` puts the object
behind the AudioClassifier interface.

The factory, called with no arguments, returns an object with

- `labels`: the model's output labels, in its output order (a list of strings);
- `sample_rate`: the rate (Hz) its waveforms are at (an int);
- `__call__(waves)`: waves is a **numpy** float32 array shaped (batch, samples), C
  contiguous, a copy the object may change; it returns class probabilities shaped
  (batch, len(labels)) as anything `numpy.asarray` takes (a numpy array, a list, a CPU
  torch tensor; a torch tensor on another device is moved to the CPU first).

Numpy, not torch, crosses the boundary because it is what every runtime takes (ONNX,
C extensions, JAX, torch via `torch.from_numpy`) and cannot leave the caller's tensors
aliased. Probabilities are checked on every call: the shape, finite values, no value
below -PROB_TOL and every row summing to 1 within PROB_TOL; the factory is also asked
once at load time about a short probe batch, so a broken model fails before any work
with one PythonModelError that names the model and says what to fix.

A factory is code: `models.trust` only ever takes it from the local catalog, never from
what a warehouse file stores.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import numpy as np

from sigwarehouse.errors import SigwhError

# How far a probability may be below 0, and a row's sum from 1 (float32 or float16 maths).
PROB_TOL = 1e-3
# The probe batch at load time: this many seconds of silence and of a noisy 440 Hz tone.
PROBE_SECONDS = 0.5
REF_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
DOCS = 'ingest/README.md, "kind = python"'


class PythonModelError(SigwhError):
    """A python-kind model that cannot be used; the message names the model and the fix."""


def who_is(ref: str, name: str | None) -> str:
    """How errors name a model: its id and ref when the id is known."""
    return f"model {name} (python {ref})" if name else f"python model {ref}"


def split_ref(ref: str) -> tuple[str, str]:
    """('package.module', 'factory') of a ref; ValueError when it is not of that form."""
    if not REF_PATTERN.match(ref):
        raise ValueError(
            f"ref {ref!r} is not of the form 'package.module:factory' (a module Python can "
            "import, a colon, and the name of a callable in it)"
        )
    module, attr = ref.split(":")
    return module, attr


def build(ref: str, name: str | None = None) -> Any:
    """Import the factory named by `ref`, call it, and return the object it made.

    Checks the object has `labels` (a non-empty list of distinct strings), an int
    `sample_rate` > 0 and is callable. Raises PythonModelError naming the model and the
    fix for a malformed ref, a module that cannot be imported, a missing factory, a
    factory that raises, or an object without those attributes.
    """
    who = who_is(ref, name)
    try:
        module_name, attr = split_ref(ref)
    except ValueError as exc:
        raise PythonModelError(f"{who}: {exc}; fix `ref` in its catalog entry") from exc
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module's own code raised
        raise PythonModelError(
            f"{who}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
            "install the package that provides it in this environment, or add its folder "
            "to PYTHONPATH, and check the spelling of `ref` in its catalog entry"
        ) from exc
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise PythonModelError(
                f"{who}: module {module_name!r} has no {attr!r}; define it there, or fix "
                "the part after the colon in `ref`"
            )
    if not callable(factory):
        raise PythonModelError(f"{who}: {attr!r} is not callable; ref must name a factory")
    try:
        obj = factory()
    except Exception as exc:
        raise PythonModelError(
            f"{who}: the factory raised {type(exc).__name__}: {exc}; fix the factory "
            f"(it is called with no arguments; {DOCS})"
        ) from exc
    labels = getattr(obj, "labels", None)
    if (
        not isinstance(labels, (list, tuple))
        or not labels
        or not all(isinstance(x, str) for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise PythonModelError(
            f"{who}: the factory's object needs `labels`, a non-empty list of distinct "
            f"strings in output order (got {labels!r}); {DOCS}"
        )
    rate = getattr(obj, "sample_rate", None)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise PythonModelError(
            f"{who}: the factory's object needs `sample_rate`, an int in Hz (got {rate!r}); {DOCS}"
        )
    if not callable(obj):
        raise PythonModelError(
            f"{who}: the factory's object is not callable; it needs __call__(waves) -> "
            f"probabilities; {DOCS}"
        )
    return obj


def check_probs(out: Any, n_batch: int, labels: list[str], who: str) -> np.ndarray:
    """The output of one call as a float32 array (n_batch, len(labels)), or PythonModelError.

    Refused: the wrong shape or a non-numeric type, NaN or Inf, a value below -PROB_TOL,
    a row whose sum is more than PROB_TOL from 1.
    """
    fix = (
        f"fix the factory's __call__: for float32 waveforms (batch, samples) it must return "
        f"probabilities (batch, {len(labels)}) over its labels {labels}, finite, >= 0, each "
        f"row summing to 1 (e.g. a softmax of logits; {DOCS})"
    )
    if hasattr(out, "detach"):  # a torch tensor, on whatever device
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PythonModelError(
            f"{who}: returned {type(out).__name__}, not numbers ({exc}); {fix}"
        ) from exc
    want = (n_batch, len(labels))
    if arr.shape != want:
        raise PythonModelError(
            f"{who}: returned shape {arr.shape} for {n_batch} waveform(s); expected {want}; {fix}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        kinds = " and ".join(
            k for k, hit in (("NaN", np.isnan(arr).any()), ("Inf", np.isinf(arr).any())) if hit
        )
        row = int(np.argwhere(bad)[0][0])
        raise PythonModelError(f"{who}: returned {kinds} (row {row}: {arr[row].tolist()}); {fix}")
    if arr.min() < -PROB_TOL:
        row = int(np.argwhere(arr < -PROB_TOL)[0][0])
        raise PythonModelError(
            f"{who}: returned negative probabilities (row {row}: {arr[row].tolist()}); {fix}"
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_TOL
    if off.any():
        row = int(np.argmax(off))
        raise PythonModelError(
            f"{who}: returned rows that do not sum to 1 (row {row} sums to {sums[row]:.6g}, "
            f"tolerance {PROB_TOL}); {fix}"
        )
    return arr.astype(np.float32)


def probe_waves(sample_rate: int) -> np.ndarray:
    """The load-time probe batch: PROBE_SECONDS of silence and of a noisy 440 Hz tone."""
    n = max(1, int(round(PROBE_SECONDS * sample_rate)))
    t = np.arange(n) / sample_rate
    noise = np.random.default_rng(0).normal(0.0, 0.01, n)
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t) + noise
    return np.stack([np.zeros(n), tone]).astype(np.float32)
