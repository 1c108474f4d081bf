-- β-transferability of parameter set `hash` at any eps, by scanning signal_probs: what
-- beta_transferability_for gives for an eps off the grid 0.01, 0.02, ..., 1.00 (on the grid
-- it reads the counts in transfer_counts, the same figures without the scan). Its columns
-- and their reading are explained in beta_transferability_for.
-- Entropies are stored as FLOAT: the bound is compared at that precision, so an entropy
-- that sits on eps * log2(n) counts, and one a rounding above log2(n) counts as log2(n).
-- Usage: SELECT * FROM beta_transferability_scan(0.37, '<params_hash>') (NULL: each task's
-- shown set). Seconds to tens of seconds at 10^8 rows.
CREATE OR REPLACE MACRO beta_transferability_scan(eps, hash) AS TABLE
WITH bounds AS (
    -- the entropy bound and the most entropy an output can have, per model's task
    SELECT m.model, log2(len(t.labels))::FLOAT AS most,
           (eps * log2(len(t.labels)))::FLOAT AS bound
    FROM models AS m JOIN tasks AS t ON t.task = m.task
),
signals AS (
    SELECT
        c.dataset,
        s.kind,
        s.source_model,
        s.target_model,
        s.params_hash,
        s.top1 = s.source_class AS same_class,
        least(s.entropy_bits, b.most) <= b.bound AS confident,
        CASE s.kind
            WHEN 'sufficient' THEN e.sufficient_size
            WHEN 'complete' THEN e.complete_size
        END AS mask_size
    FROM signal_probs AS s
    JOIN clips AS c USING (clip_id)
    JOIN bounds AS b ON b.model = s.source_model
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete')
),
cells AS (
    SELECT  -- the output's columns but task, in its order
        dataset,
        kind,
        source_model,
        target_model,
        count(*) AS n_signals,
        avg(CASE WHEN same_class AND confident THEN 1.0 ELSE 0.0 END) AS beta,
        avg(CASE WHEN confident THEN 1.0 ELSE 0.0 END) AS beta_entropy_only,
        count(*) FILTER (WHERE mask_size = 0) AS n_empty,
        avg(CASE WHEN same_class AND confident THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE mask_size > 0) AS beta_nonempty,
        params_hash
    FROM signals
    GROUP BY dataset, kind, source_model, target_model, params_hash
)
SELECT w.task, x.*
FROM cells AS x
JOIN model_sets_for(hash) AS w ON w.model = x.source_model AND w.params_hash = x.params_hash;
