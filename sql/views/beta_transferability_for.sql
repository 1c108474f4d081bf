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
--
-- For eps on the grid 0.01, 0.02, ..., 1.00 the answer is read from transfer_counts,
-- where the writer keeps, per cell, how many signals first fall within the bound at each
-- step of the grid; any other eps scans the rows (beta_transferability_scan). DuckDB drops
-- the branch whose condition is false before running the query.
CREATE OR REPLACE MACRO beta_transferability_for(eps, hash) AS TABLE
WITH cells AS (
    SELECT  -- the output's columns but task, in its order
        dataset,
        kind,
        source_model,
        target_model,
        sum(n)::BIGINT AS n_signals,
        coalesce(sum(n) FILTER (WHERE same_class AND eps_level <= round(eps * 100)), 0)::DOUBLE
            / sum(n) AS beta,
        coalesce(sum(n) FILTER (WHERE eps_level <= round(eps * 100)), 0)::DOUBLE
            / sum(n) AS beta_entropy_only,
        coalesce(sum(n) FILTER (WHERE mask = 'empty'), 0)::BIGINT AS n_empty,
        coalesce(sum(n) FILTER (
            WHERE same_class AND eps_level <= round(eps * 100) AND mask = 'kept'), 0)::DOUBLE
            / nullif(sum(n) FILTER (WHERE mask = 'kept'), 0) AS beta_nonempty,
        params_hash
    FROM transfer_counts
    WHERE round(eps * 100) / 100 = eps::DOUBLE
    GROUP BY dataset, kind, source_model, target_model, params_hash
)
SELECT w.task, x.*
FROM cells AS x
JOIN model_sets_for(hash) AS w ON w.model = x.source_model AND w.params_hash = x.params_hash
UNION ALL
SELECT * FROM beta_transferability_scan(eps, hash)
WHERE round(eps * 100) / 100 <> eps::DOUBLE;
