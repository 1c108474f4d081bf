-- β-transferability of parameter set `hash` with parameter eps in (0, 1], as the
-- paper's definition 4 reads: a signal of source_model transfers to target_model when
-- target_model's top-1 class is source_model's class AND its output entropy is at most
-- eps * log2(n_classes) bits. `beta` is the share of source_model's sufficient (or
-- complete) signals that transfer. At eps = 1 only the class matters (no output over n
-- classes has more than log2(n) bits), so beta at eps = 1 equals alpha on every cell.
--   beta_entropy_only: the share whose entropy is within the bound, whatever the class
--     (what this macro reported before the joint reading; it is 1 at eps = 1).
--   n_empty, beta_nonempty: how many signals have an empty mask (silence: the all-zero
--     signal keeps the class) and β over the others (NULL when there is none).
-- Entropies are stored as FLOAT: the bound is compared at that precision, so an entropy
-- that sits on eps * log2(n) counts, and one a rounding above log2(n) counts as log2(n).
-- Usage: SELECT * FROM beta_transferability_for(0.5, '<params_hash>'), for any set listed
-- in parameter_sets. With NULL it gives each task's shown set, which is what the macro
-- beta_transferability(eps) gives.
-- As in alpha_transferability_for, signals are counted per cell over every parameter set
-- first and the catalog joined to the counted cells (faster at 10^7 rows and more).
CREATE OR REPLACE MACRO beta_transferability_for(eps, hash) AS TABLE
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
    SELECT
        dataset,
        kind,
        source_model,
        target_model,
        params_hash,
        count(*) AS n_signals,
        avg(CASE WHEN same_class AND confident THEN 1.0 ELSE 0.0 END) AS beta,
        avg(CASE WHEN confident THEN 1.0 ELSE 0.0 END) AS beta_entropy_only,
        count(*) FILTER (WHERE mask_size = 0) AS n_empty,
        avg(CASE WHEN same_class AND confident THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE mask_size > 0) AS beta_nonempty
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
    x.beta,
    x.beta_entropy_only,
    x.n_empty,
    x.beta_nonempty,
    x.params_hash
FROM cells AS x
JOIN model_sets_for(hash) AS w ON w.model = x.source_model AND w.params_hash = x.params_hash;
