-- Per model, for parameter set `hash`: avg_out = mean α of its signals over the other
-- models (the paper's `avg` column); avg_in = mean α of the other models' signals on it
-- (how readily it accepts).
-- The diagonal is left out of both.
-- Silence beside them: n_signals and n_empty count the model's own signals and those
-- with an empty mask (the all-zero signal keeps its class); avg_out_nonempty and
-- avg_in_nonempty are the same means of alpha_nonempty, α over non-empty signals (a
-- cell without non-empty signals is left out; NULL when no cell has any); n_empty_in
-- counts the other models' empty signals this model was asked about.
-- Usage: SELECT * FROM transferability_summary_for('<params_hash>'). With NULL it gives
-- each task's shown set (see parameter_sets), which is what the view
-- transferability_summary is.
CREATE OR REPLACE MACRO transferability_summary_for(hash) AS TABLE
WITH off_diagonal AS (
    SELECT * FROM alpha_transferability_for(hash) WHERE source_model <> target_model
),
outgoing AS (
    SELECT
        task, dataset, kind, params_hash, source_model AS model,
        avg(alpha) AS avg_out,
        avg(alpha_nonempty) AS avg_out_nonempty
    FROM off_diagonal GROUP BY ALL
),
own AS (
    -- every target sees each of the model's signals, the model itself included
    SELECT
        task, dataset, kind, params_hash, source_model AS model,
        max(n_signals) AS n_signals,
        max(n_empty) AS n_empty
    FROM alpha_transferability_for(hash) GROUP BY ALL
),
incoming AS (
    SELECT
        task, dataset, kind, params_hash, target_model AS model,
        avg(alpha) AS avg_in,
        avg(alpha_nonempty) AS avg_in_nonempty,
        sum(n_empty)::BIGINT AS n_empty_in
    FROM off_diagonal GROUP BY ALL
)
SELECT
    task, dataset, kind, model, o.avg_out, i.avg_in,
    w.n_signals, w.n_empty, o.avg_out_nonempty, i.avg_in_nonempty, i.n_empty_in,
    params_hash
FROM outgoing AS o
FULL JOIN incoming AS i USING (task, dataset, kind, params_hash, model)
LEFT JOIN own AS w USING (task, dataset, kind, params_hash, model);
