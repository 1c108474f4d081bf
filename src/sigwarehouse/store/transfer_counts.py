"""Per-cell counts of the transferability signals, kept beside `signal_probs`.

α and β ask of every cell (parameter set, source model, kind, target model, dataset) how
many sufficient or complete signals it holds and how many of them transfer. Scanning
`signal_probs` with its joins for that took 9-31 s at 10^8 rows on 2 cores
(bench/bench_views.py); the table `transfer_counts` holds the same answers in a few rows
per cell, so the views read it instead.

A row counts the signals of one cell that share:
  - `mask`: 'empty' (the explanation's mask of that kind keeps no bin: silence),
    'kept' (it keeps at least one) or 'unknown' (no explanation row, or no mask);
  - `same_class`: the target's top-1 class is the source's;
  - `eps_level`: the smallest k in 0..100 for which the target's entropy is within
    β's bound at ε = k/100, compared exactly as beta_transferability_for compares it:
    least(entropy_bits, log2(n)::FLOAT) <= (k / 100 * log2(n))::FLOAT, n the number of
    the source task's classes. So β at any ε on the grid 0.01, 0.02, ..., 1.00 is read
    from the counts exactly; other values of ε scan the rows.

The only writer of `signal_probs`, write_path.py (insert_rows), adds the counts of the rows
it inserts in the same transaction; clips.py subtracts those of rows whose clip it
removes. Anything else that changes `signal_probs` (`sigwh sql --write`, another
program) must rebuild them: `sigwh recount`, or rebuild() here. `sigwh info` says when
the counts and the rows disagree.
"""

from __future__ import annotations

import duckdb

LEVELS = 100  # β's ε on the grid 1/LEVELS, 2/LEVELS, ..., 1

# The counts of the signals in relation {rows} (columns as signal_probs). The guess k0 of
# the level is within one of the true level: the bounds k/100·log2(n) lie log2(n)/100
# apart, far more than a float's rounding, so the exact test tries k0 - 1, k0, k0 + 1.
_COUNT = f"""
WITH signals AS (
    SELECT
        s.params_hash, s.source_model, s.kind, s.target_model, c.dataset,
        CASE s.kind WHEN 'sufficient' THEN e.sufficient_size
                    WHEN 'complete' THEN e.complete_size END AS mask_size,
        s.top1 = s.source_class AS same_class,
        least(s.entropy_bits, log2(len(t.labels))::FLOAT) AS bits,
        log2(len(t.labels)) AS most
    FROM {{rows}} AS s
    JOIN clips AS c USING (clip_id)
    JOIN models AS m ON m.model = s.source_model
    JOIN tasks AS t ON t.task = m.task
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete')
),
guessed AS (
    SELECT *, least(greatest(ceil(bits / most * {LEVELS}), 0), {LEVELS})::SMALLINT AS k0
    FROM signals
)
SELECT
    params_hash, source_model, kind, target_model, dataset,
    CASE WHEN mask_size = 0 THEN 'empty' WHEN mask_size > 0 THEN 'kept' ELSE 'unknown' END
        AS mask,
    same_class,
    CASE WHEN k0 > 0 AND bits <= ((k0 - 1) / {LEVELS} * most)::FLOAT THEN k0 - 1
         WHEN bits <= (k0 / {LEVELS} * most)::FLOAT THEN k0
         ELSE k0 + 1 END::SMALLINT AS eps_level,
    {{sign}} * count(*) AS n
FROM guessed
GROUP BY ALL
"""

_KEY = "params_hash, source_model, kind, target_model, dataset, mask, same_class, eps_level"


def add(con: duckdb.DuckDBPyConnection, rows: str, sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1) the counts of the signals in relation `rows`
    (a table, view or registered name with signal_probs' columns), in the caller's
    transaction. `rows` is a name this package chooses, never one read from a file."""
    if sign not in (1, -1):
        raise ValueError("sign must be 1 or -1")
    con.execute(
        f"INSERT INTO transfer_counts ({_KEY}, n) "
        + _COUNT.format(rows=rows, sign=sign)
        + " ON CONFLICT DO UPDATE SET n = n + excluded.n"
    )
    if sign < 0:
        con.execute("DELETE FROM transfer_counts WHERE n = 0")


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Count every stored signal afresh, in the caller's transaction."""
    con.execute("DELETE FROM transfer_counts")
    add(con, "signal_probs")


def disagreements(con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[tuple]:
    """Up to `limit` counts rows that a fresh count of signal_probs would not give (key
    columns, stored n, counted n; NULL where one side has no row). Empty when they agree.
    A full scan: seconds at 10^8 rows."""
    counted = _COUNT.format(rows="signal_probs", sign=1)
    return con.execute(
        f"WITH fresh AS ({counted}) "
        f"SELECT {_KEY}, stored.n, fresh.n FROM transfer_counts AS stored "
        f"FULL JOIN fresh USING ({_KEY}) "
        "WHERE stored.n IS DISTINCT FROM fresh.n "
        f"ORDER BY ALL LIMIT {int(limit)}"
    ).fetchall()


def forget_clips(con: duckdb.DuckDBPyConnection, clip_ids: list[int]) -> None:
    """Take away the counts of the signals on `clip_ids`, before those clips' rows are
    deleted (the views count only signals whose clip is registered), in the caller's
    transaction."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sigwh_forgotten AS "
        "FROM signal_probs WHERE clip_id IN (SELECT unnest(?::INTEGER[]))",
        [clip_ids],
    )
    add(con, "_sigwh_forgotten", sign=-1)
    con.execute("DROP TABLE _sigwh_forgotten")
