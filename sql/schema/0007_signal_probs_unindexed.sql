-- signal_probs without its primary-key index, sorted for compression.
--
-- At study scale this table holds 10^7-10^8 rows. Its five-column primary key was kept
-- by an ART index that took ~115 of the ~135 bytes each row cost in the file (measured
-- with bench/bench_views.py: 19 bytes a row without it), and that DuckDB rewrites whole
-- whenever the file is checkpointed. The natural key (source_model, clip_id,
-- params_hash, kind, target_model) stays the rule: the only writer, jobs/runs.py
-- (insert_rows), inserts a row only where no row with its key is stored, in the same
-- transaction as the rest of the batch, as INSERT OR IGNORE did;
-- `sigwh info` warns of keys stored twice (a foreign writer may have added rows).
--
-- The rows are copied in one transaction (all or nothing: an interrupted migration
-- leaves the old table as it was, and `sigwh migrate` starts it again), ordered so that
-- each column's runs of equal values are long.
CREATE TABLE signal_probs_compact (
    source_model    VARCHAR NOT NULL,
    clip_id         INTEGER NOT NULL,
    params_hash     VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,        -- sufficient, complete, inverse, sufficient-<rank>
    target_model    VARCHAR NOT NULL,
    source_class    SMALLINT NOT NULL,       -- the class source_model gave the original clip
    probs           FLOAT[] NOT NULL,        -- in task label order
    top1            SMALLINT NOT NULL,
    entropy_bits    FLOAT NOT NULL,
    run_id          UUID NOT NULL
);

INSERT INTO signal_probs_compact
SELECT * FROM signal_probs
ORDER BY params_hash, source_model, kind, target_model, clip_id;

DROP TABLE signal_probs;

ALTER TABLE signal_probs_compact RENAME TO signal_probs;
