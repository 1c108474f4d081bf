-- The warehouse's current freqrex parameter set: the one `sigwh ingest --model M`
-- continues when no --preset or --param asks for another, and the one the views show
-- for every task that has explanations with it (view parameter_sets). At most one row.
-- The first ingest job sets it (the demo's included); a warehouse made before this
-- migration gets the set with the most explanations (then the latest run's, then the
-- smallest hash, as parameter_sets chose).
CREATE TABLE current_params (
    only_row        BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    params_hash     VARCHAR NOT NULL,
    set_at          TIMESTAMP NOT NULL DEFAULT current_timestamp
);

INSERT INTO current_params (params_hash)
SELECT e.params_hash
FROM explanations AS e
LEFT JOIN runs AS r ON r.run_id = e.run_id
GROUP BY e.params_hash
ORDER BY count(*) DESC, max(r.started_at) DESC NULLS LAST, e.params_hash
LIMIT 1;
