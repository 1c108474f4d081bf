-- α-transferability of sufficient signals by rank, for parameter set `hash` (NULL: each
-- task's shown set, as in parameter_sets). An explanation made with n_sufficient = K
-- has up to K pairwise-disjoint sufficient masks: rank 1 is explanations.sufficient_mask
-- (signal kind 'sufficient'), ranks 2..K are in sufficient_ranks (kind 'sufficient-<rank>').
-- alpha is the share of source_model's rank-r sufficient signals whose top-1 class on
-- target_model is the class source_model gave. Rank 1 is the same rows, and so the same
-- numbers, as alpha_transferability's sufficient cells. n_empty and alpha_nonempty set
-- silence apart as there (only rank 1 can be empty).
CREATE OR REPLACE MACRO alpha_by_rank_for(hash) AS TABLE
WITH ranked AS (
    SELECT
        *,
        CASE WHEN kind = 'sufficient' THEN 1
             ELSE TRY_CAST(substr(kind, length('sufficient-') + 1) AS INTEGER) END AS rank
    FROM signal_probs
    WHERE kind = 'sufficient' OR kind LIKE 'sufficient-%'
),
signals AS (
    SELECT
        m.task,
        c.dataset,
        s.source_model,
        s.target_model,
        s.params_hash,
        s.rank,
        CASE WHEN s.top1 = s.source_class THEN 1.0 ELSE 0.0 END AS accepted,
        CASE WHEN s.rank = 1 THEN e.sufficient_size ELSE r.size END AS mask_size
    FROM ranked AS s
    JOIN clips AS c USING (clip_id)
    JOIN models AS m ON m.model = s.source_model
    JOIN parameter_sets AS p ON p.task = m.task AND p.params_hash = s.params_hash
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    LEFT JOIN sufficient_ranks AS r
        ON r.model = s.source_model AND r.clip_id = s.clip_id
       AND r.params_hash = s.params_hash AND r.rank = s.rank
    WHERE coalesce(s.params_hash = hash, p.shown)
)
SELECT
    task,
    dataset,
    rank,
    source_model,
    target_model,
    count(*) AS n_signals,
    avg(accepted) AS alpha,
    count(*) FILTER (WHERE mask_size = 0) AS n_empty,
    avg(accepted) FILTER (WHERE mask_size > 0) AS alpha_nonempty,
    params_hash
FROM signals
GROUP BY task, dataset, rank, source_model, target_model, params_hash;
