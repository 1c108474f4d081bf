"""`sigwh views --check`: the package's views and macros beside the file's stored ones.

Maintenance, above the connection (it opens the warehouse read-only); what differs is
decided by views.differences().
"""

from __future__ import annotations

from pathlib import Path

from sigwarehouse.store import connection, sql_files
from sigwarehouse.store.views import differences


def check(path: Path) -> tuple[str, int]:
    """A listing of the package's views and macros with how the file's stored definition
    compares (same, differs, missing), then any view only the file has; and the number
    of views that differ or are missing. Opens the warehouse read-only."""
    con = connection.connect(path, read_only=True)
    try:
        applied = sql_files.applied_versions(con)
        found = {d.name: d for d in differences(con, applied)}
    finally:
        con.close()
    lines = [f"views and macros of {path} (sigwh reads sigwarehouse's definitions):"]
    for name, _ in sql_files.ordered_views():
        diff = found.get(name)
        lines.append(f"  {name:<28} {'same' if diff is None else diff.status}")
    extra = [d for d in found.values() if d.status == "extra"]
    lines += [f"  {d.name:<28} only in the file (never used by sigwh)" for d in extra]
    differ = [d for d in found.values() if d.status == "differs"]
    for d in differ:
        lines += ["", f"{d.name}:", f"  sigwarehouse: {d.ours}", f"  the file:     {d.theirs}"]
    n = sum(d.status != "extra" for d in found.values())
    if n:
        lines += ["", f"{n} view(s) differ from sigwarehouse's; `sigwh migrate` replaces them"]
    return "\n".join(lines), n
