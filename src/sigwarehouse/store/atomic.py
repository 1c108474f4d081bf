"""`transaction(con)`: BEGIN … COMMIT around a block, ROLLBACK if it raises.

Every multi-statement write of sigwarehouse goes through it (migrations, views, the
catalog, clips, a job's batch), so the rule lives in one place, at the bottom of the
storage package where every layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT around the block; ROLLBACK and re-raise if it raises, so a failure
    leaves none of the block's writes behind."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:  # KeyboardInterrupt too: roll back now, not when the file closes
        con.execute("ROLLBACK")
        raise
    # Outside the try: a COMMIT that fails has already been rolled back by DuckDB, and a
    # ROLLBACK then would only raise "no transaction is active" over the real error.
    con.execute("COMMIT")
