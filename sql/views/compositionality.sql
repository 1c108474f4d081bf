-- Degree of compositionality (the paper's table 4): for each model and class, the share of
-- the class's sufficient signals that the greedy composition kept, |κ| / candidates.
-- Candidates are the non-empty sufficient signals; n_empty counts those left out because
-- their sufficient mask keeps no bin (the model gives the class to silence). degree is
-- NULL when there is no candidate.
CREATE OR REPLACE VIEW compositionality AS
SELECT
    m.task,
    k.dataset,
    k.model,
    t.labels[k.class + 1] AS class,
    k.n_candidates,
    k.n_composed,
    k.n_composed / nullif(k.n_candidates, 0) AS degree,
    k.n_empty,
    k.params_hash,
    k.seed
FROM composites AS k
JOIN models AS m ON m.model = k.model
JOIN tasks AS t ON t.task = m.task;
