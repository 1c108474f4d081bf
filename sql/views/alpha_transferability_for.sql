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
-- The signals are counted per cell first, over every parameter set, and the cells of
-- the set asked for are kept afterwards: joining the small catalog tables after the
-- count, not to every signal row, makes the macro ~2.5x faster at 10^7 rows
-- (bench/bench_views.py).
CREATE OR REPLACE MACRO alpha_transferability_for(hash) AS TABLE
WITH signals AS (
    SELECT
        c.dataset,
        s.kind,
        s.source_model,
        s.target_model,
        s.params_hash,
        CASE WHEN s.top1 = s.source_class THEN 1.0 ELSE 0.0 END AS accepted,
        CASE s.kind
            WHEN 'sufficient' THEN e.sufficient_size
            WHEN 'complete' THEN e.complete_size
        END AS mask_size
    FROM signal_probs AS s
    JOIN clips AS c USING (clip_id)
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete')
),
cells AS (
    SELECT
        dataset,
        kind,
        source_model,
        target_model,
        params_hash,
        count(*) AS n_signals,
        avg(accepted) AS alpha,
        count(*) FILTER (WHERE mask_size = 0) AS n_empty,
        avg(accepted) FILTER (WHERE mask_size > 0) AS alpha_nonempty
    FROM signals
    GROUP BY dataset, kind, source_model, target_model, params_hash
)
SELECT
    w.task,
    x.dataset,
    x.kind,
    x.source_model,
    x.target_model,
    x.n_signals,
    x.alpha,
    x.n_empty,
    x.alpha_nonempty,
    x.params_hash
FROM cells AS x
JOIN model_sets_for(hash) AS w ON w.model = x.source_model AND w.params_hash = x.params_hash;
