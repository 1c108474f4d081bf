-- Which parameter set a view shows for each model: (model, task, params_hash) of every
-- model whose task has the set `hash` (NULL: the task's shown set, as parameter_sets
-- decides). The per-cell macros count signals over every set and keep the cells of
-- these rows (alpha_transferability_for, beta_transferability_for).
CREATE OR REPLACE MACRO model_sets_for(hash) AS TABLE
SELECT m.model, m.task, p.params_hash
FROM models AS m
JOIN parameter_sets AS p ON p.task = m.task
WHERE coalesce(p.params_hash = hash, p.shown);
