"""Does explanation on the CPU collapse when another process keeps the machine busy?

    python bench/bench_cpu_threads.py                 # vc1, 8 clips, 2 torch threads
    python bench/bench_cpu_threads.py --clips 4 --threads 1

Runs `explain` on the same clips four times, each in a fresh process (OpenMP reads its
settings when torch loads): quiet and beside one competing CPU-bound process, with
OpenMP's threads spinning while they wait (`OMP_WAIT_POLICY=ACTIVE`, how torch behaved
before sigwarehouse set a default) and waiting passively (`PASSIVE`, sigwarehouse's
default). Prints each run's seconds and the busy/quiet slowdown per policy; the target
is a slowdown of at most 2.5x. "Quiet" is only as quiet as the machine is: run it when
nothing else is running.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOB = """
import sys, time, torch
sys.path.insert(0, {bench!r})
from bench_explanations import load_clips, load_model
from sigwarehouse.freqrex import FreqrexParams, explain
torch.set_num_threads({threads})
model = load_model({model!r})
clips = load_clips({task!r}, {n})
start = time.perf_counter()
explain(model, clips, FreqrexParams())
print(time.perf_counter() - start)
"""

# a competing process: keeps one core busy with plain Python arithmetic
HOG = "x = 0\nwhile True:\n    x = (x * 1103515245 + 12345) % 2147483648\n"


def timed_run(args, policy: str) -> float:
    model = Path(args.model).resolve()
    code = JOB.format(bench=str(ROOT / "bench"), threads=args.threads, model=str(model),
                      task=model.parent.name, n=args.clips)  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "data/zoo/emotion/vc1.safetensors"))
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"{args.clips} clips, {args.threads} torch threads, model {Path(args.model).stem}")
    for policy in ("ACTIVE", "PASSIVE"):
        quiet = timed_run(args, policy)
        hog = subprocess.Popen([sys.executable, "-c", HOG])
        try:
            time.sleep(0.5)
            busy = timed_run(args, policy)
        finally:
            hog.kill()
            hog.wait()
        print(f"OMP_WAIT_POLICY={policy:<8} quiet {quiet:6.1f} s   beside a busy process "
              f"{busy:6.1f} s   slowdown {busy / quiet:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
