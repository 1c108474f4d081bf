"""freqrex: causal-responsibility explanations of audio classifiers over Fourier bins.

`explain(classifier, waves, params)` returns one `Explanation` per clip: the original
class, a responsibility map over the variables, a sufficient mask, a delta-complete
mask (or the reason there is none), the inverse signal's class and the queries spent.
`signals_for(waves, masks)` turns stored masks back into waveforms on the device.

Only `params` is imported eagerly; everything that needs torch loads on first use, so
importing this package (or `FreqrexParams`) costs nothing at CLI start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigwarehouse.freqrex.params import FreqrexParams

if TYPE_CHECKING:
    from sigwarehouse.freqrex.engine import Explanation, explain
    from sigwarehouse.freqrex.spectral import (
        bands_to_mask,
        mask_to_bands,
        pack_mask,
        signals_for,
        unpack_mask,
    )

__all__ = [
    "Explanation",
    "FreqrexParams",
    "bands_to_mask",
    "explain",
    "mask_to_bands",
    "pack_mask",
    "signals_for",
    "unpack_mask",
]

_LAZY = {
    "Explanation": "sigwarehouse.freqrex.engine",
    "explain": "sigwarehouse.freqrex.engine",
    "signals_for": "sigwarehouse.freqrex.spectral",
    "pack_mask": "sigwarehouse.freqrex.spectral",
    "unpack_mask": "sigwarehouse.freqrex.spectral",
    "mask_to_bands": "sigwarehouse.freqrex.spectral",
    "bands_to_mask": "sigwarehouse.freqrex.spectral",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
