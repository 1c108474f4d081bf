"""sigwarehouse: causal transferability analysis of audio classifiers, in DuckDB."""

import os

__version__ = "0.1.0"

# torch's CPU threads (OpenMP) spin while they wait for work. On a machine that other
# processes keep busy, spinning threads steal each other's cores: an explanation job
# with 2 threads ran 9x slower (110 s against 12 s for 8 clips, bench/bench_cpu_threads.py)
# beside two other busy processes. Passive waiting removes that collapse and costs
# nothing measurable on an idle machine. It must be set before torch loads OpenMP, so
# here, where every entry point (CLI, jobs, tests) starts; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
