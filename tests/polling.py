"""Watching a job in another process until it has stored its first batch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sigwarehouse import warehouse


def first_batch_stored(
    job: subprocess.Popen, path: Path, count_sql: str, params: list | None = None, timeout_s=180
) -> int:
    """Poll `count_sql` on the file every 50 ms until it counts a row, the job ends, or
    timeout_s passes; the last count. Each poll opens the file without the package's
    views: installing them costs more CPU than the count, CPU the watched job needs."""
    deadline, done = time.monotonic() + timeout_s, 0
    while done < 1 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
        with warehouse.opened(path, read_only=True, package_views=False) as con:
            done = con.execute(count_sql, params or []).fetchone()[0]
    return done
