-- β-transferability(eps) (the paper's definition 4) of each task's shown parameter set
-- (the rule is in parameter_sets): the share of source_model's sufficient (or complete)
-- signals that target_model gives source_model's class with an output entropy of at most
-- eps * log2(n_classes) bits; beta at eps = 1 equals alpha. The columns are explained in
-- beta_transferability_for.
-- Usage: SELECT * FROM beta_transferability(0.5). Another parameter set:
-- SELECT * FROM beta_transferability_for(0.5, '<params_hash>').
CREATE OR REPLACE MACRO beta_transferability(eps) AS TABLE
SELECT * FROM beta_transferability_for(eps, NULL);
