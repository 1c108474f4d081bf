"""Write the expected report tables: every CSV `sigwh report` writes for the two
warehouses of tests/test_report_tables.py (the small hand-made one and a small bench one).

    PYTHONPATH=src python tests/expected_report/regenerate.py

The set checked in was written by the report's code before issue 33 moved the analyses'
row work into DuckDB (commit 6bc8afa); the test shows that the code of today writes the
same bytes. Run this only when a change of the figures is intended, and say so in the
commit.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the warehouses' builders

import report_tables  # noqa: E402 (after the path above)


def main() -> None:
    for name, build in report_tables.WAREHOUSES.items():
        with tempfile.TemporaryDirectory() as tmp:
            tables = report_tables.report_tables(build(Path(tmp)), Path(tmp) / "out")
            target = HERE / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for file_name, text in tables.items():
                (target / file_name).write_text(text, encoding="utf-8")
            print(f"{target}: {len(tables)} tables")


if __name__ == "__main__":
    main()
