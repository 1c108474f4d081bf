-- The freqrex parameter sets each task has explanations with, and the one its views show.
-- Every explanation, signal and α/β figure belongs to one parameter set (params_hash):
-- figures made with different parameters are never pooled. So that a table has one row
-- per cell, the transferability views (alpha_transferability, beta_transferability(eps),
-- transferability_summary, flat_earthers, flat_earthers_at(margin)) show one set per
-- task, the one with `shown`:
--   1. the warehouse's current set (table current_params: the set it was built with, which
--      `sigwh ingest` continues), where the task has explanations with it;
--   2. else the set with the most explanations of the task's models (the most work behind it);
--   3. on a tie, the set whose most recent explanation comes from the latest-started run;
--   4. then the smallest params_hash, so the choice never depends on row order.
-- Every set stays reachable through the `_for` macros, which take a params_hash:
-- alpha_transferability_for(hash), beta_transferability_for(eps, hash),
-- transferability_summary_for(hash) and flat_earthers_for(margin, hash).
-- n_models and n_explanations count the set's explanations of the task's models; params
-- is the set as stored (freqrex_params), last_run the start of its latest run, current
-- whether it is the warehouse's current set.
CREATE OR REPLACE VIEW parameter_sets AS
WITH sets AS (
    SELECT
        m.task,
        e.params_hash,
        count(DISTINCT e.model) AS n_models,
        count(*) AS n_explanations,
        max(r.started_at) AS last_run
    FROM explanations AS e
    JOIN models AS m ON m.model = e.model
    LEFT JOIN runs AS r ON r.run_id = e.run_id
    GROUP BY m.task, e.params_hash
)
SELECT
    s.task,
    s.params_hash,
    row_number() OVER (
        PARTITION BY s.task
        ORDER BY s.params_hash IS NOT DISTINCT FROM c.params_hash DESC,
            s.n_explanations DESC, s.last_run DESC NULLS LAST, s.params_hash
    ) = 1 AS shown,
    s.n_models,
    s.n_explanations,
    s.last_run,
    p.params,
    s.params_hash IS NOT DISTINCT FROM c.params_hash AS current
FROM sets AS s
LEFT JOIN freqrex_params AS p ON p.params_hash = s.params_hash
LEFT JOIN current_params AS c ON true;
