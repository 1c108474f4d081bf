-- α-transferability (the paper's definition 5) of parameter set `hash`: the share of
-- source_model's sufficient (or complete) signals whose top-1 class on target_model is the
-- class source_model gave. The diagonal (source = target) is kept: it is 1 by
-- construction and checks the data.
-- Usage: SELECT * FROM alpha_transferability_for('<params_hash>'), for any set listed in
-- parameter_sets. With NULL it gives each task's shown set, which is what the view
-- alpha_transferability is.
--
-- Silence is not evidence. Where the all-zero signal already gets the class, the
-- sufficient mask keeps no bin (explanations.sufficient_size = 0, reason
-- 'empty-signal-keeps-class'): the "signal" is silence, and a target accepts it when the
-- target gives that class to silence. So every cell also reports n_empty, how many of
-- its signals have an empty mask of their kind, and alpha_nonempty, α over the signals
-- whose mask keeps at least one bin (NULL when there is none). A complete mask is never
-- empty (its inverse would be the clip itself, which keeps the class), so n_empty is 0
-- for complete signals. A signal whose explanation row is missing counts in neither.
--
-- The signals are read from transfer_counts, their counts per cell kept by the writer
-- (a scan of signal_probs took 9 s at 10^8 rows; this reads a few rows per cell).
CREATE OR REPLACE MACRO alpha_transferability_for(hash) AS TABLE
WITH cells AS (
    SELECT  -- the output's columns but task, in its order
        dataset,
        kind,
        source_model,
        target_model,
        sum(n)::BIGINT AS n_signals,
        coalesce(sum(n) FILTER (WHERE same_class), 0)::DOUBLE / sum(n) AS alpha,
        coalesce(sum(n) FILTER (WHERE mask = 'empty'), 0)::BIGINT AS n_empty,
        coalesce(sum(n) FILTER (WHERE same_class AND mask = 'kept'), 0)::DOUBLE
            / nullif(sum(n) FILTER (WHERE mask = 'kept'), 0) AS alpha_nonempty,
        params_hash
    FROM transfer_counts
    GROUP BY dataset, kind, source_model, target_model, params_hash
)
SELECT w.task, x.*
FROM cells AS x
JOIN model_sets_for(hash) AS w ON w.model = x.source_model AND w.params_hash = x.params_hash;
