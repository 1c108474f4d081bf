-- How many ways does a model recognise a clip? Per task, parameter set, model and the
-- class the model gave: how many clips have `multiplicity` pairwise-disjoint sufficient
-- masks (rank 1 from explanations, ranks 2.. from sufficient_ranks; 0 when no sufficient
-- mask was found), with `n_sufficient` the most the parameter set asked for, and the
-- sizes (kept bins) of all those clips' masks: min, median, max. A clip whose empty
-- signal keeps the class (silence) has multiplicity 1 and size 0.
CREATE OR REPLACE VIEW explanation_multiplicity AS
WITH masks AS (
    SELECT model, clip_id, params_hash, 1 AS rank, sufficient_size AS size
    FROM explanations WHERE sufficient_size IS NOT NULL
    UNION ALL
    SELECT model, clip_id, params_hash, rank, size FROM sufficient_ranks
),
per_clip AS (
    SELECT e.model, e.clip_id, e.params_hash, e.orig_class, count(k.rank) AS multiplicity
    FROM explanations AS e
    LEFT JOIN masks AS k USING (model, clip_id, params_hash)
    GROUP BY e.model, e.clip_id, e.params_hash, e.orig_class
)
SELECT
    m.task,
    p.params_hash,
    coalesce(json_extract(f.params, '$.n_sufficient')::INTEGER, 1) AS n_sufficient,
    p.model,
    t.labels[p.orig_class + 1] AS class,
    p.multiplicity,
    count(DISTINCT p.clip_id) AS n_clips,
    min(k.size) AS min_size,
    median(k.size) AS median_size,
    max(k.size) AS max_size
FROM per_clip AS p
LEFT JOIN masks AS k USING (model, clip_id, params_hash)
JOIN models AS m ON m.model = p.model
JOIN tasks AS t ON t.task = m.task
LEFT JOIN freqrex_params AS f ON f.params_hash = p.params_hash
GROUP BY m.task, p.params_hash, f.params, p.model, t.labels, p.orig_class, p.multiplicity;
