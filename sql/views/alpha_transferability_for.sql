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
CREATE OR REPLACE MACRO alpha_transferability_for(hash) AS TABLE
WITH signals AS (
    SELECT
        m.task,
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
    JOIN models AS m ON m.model = s.source_model
    JOIN parameter_sets AS p ON p.task = m.task AND p.params_hash = s.params_hash
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete')
      AND coalesce(s.params_hash = hash, p.shown)
)
SELECT
    task,
    dataset,
    kind,
    source_model,
    target_model,
    count(*) AS n_signals,
    avg(accepted) AS alpha,
    count(*) FILTER (WHERE mask_size = 0) AS n_empty,
    avg(accepted) FILTER (WHERE mask_size > 0) AS alpha_nonempty,
    params_hash
FROM signals
GROUP BY task, dataset, kind, source_model, target_model, params_hash;
