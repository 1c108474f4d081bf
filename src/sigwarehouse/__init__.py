"""sigwarehouse: causal transferability analysis of audio classifiers, in DuckDB.

For notebooks (see sigwarehouse.api and docs/notebook.ipynb):

    import sigwarehouse
    wh = sigwarehouse.open("warehouse.duckdb")   # read-only
    wh.alpha(task="speech"); wh.summary()        # Polars DataFrames
    e = wh.explanation("webrtc", clip_id=1)      # masks as NumPy bools, bands in Hz
    e.signal("sufficient")                       # plays in a notebook
"""

import os
import sys

from sigwarehouse import shipped

__version__ = "0.1.0"

# torch's CPU threads (OpenMP) spin while they wait for work. On a machine that other
# processes keep busy, spinning threads steal each other's cores: an explanation job
# with 2 threads ran 9x slower (110 s against 12 s for 8 clips, bench/bench_cpu_threads.py)
# beside two other busy processes. Passive waiting removes that collapse and costs
# nothing measurable on an idle machine. It must be set before torch loads OpenMP, so
# here, where every entry point (CLI, jobs, tests) starts; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The shipped analyses are the repository's top-level analyses/ folder, which the wheel
# installs as sigwarehouse/analyses: in a source checkout, `sigwarehouse.analyses` is
# found there (see sigwarehouse.shipped).
if not shipped.installed_analyses() and not any(
    isinstance(f, shipped.CheckoutAnalyses) for f in sys.meta_path
):
    sys.meta_path.insert(0, shipped.CheckoutAnalyses())

# The notebook API, loaded on first use (PEP 562), so that `import sigwarehouse` (every
# CLI start) does not load Polars and DuckDB for it.
_API = ("open", "Warehouse", "Explanation", "Signal")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module  # the API loads on first use: see above

        return getattr(import_module("sigwarehouse.api"), name)
    raise AttributeError(f"module 'sigwarehouse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
