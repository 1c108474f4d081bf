-- α-transferability (the paper's definition 5) of each task's shown parameter set (the
-- rule is in parameter_sets): one row per task, dataset, kind, source_model and
-- target_model. alpha is the share of source_model's sufficient (or complete) signals
-- whose top-1 class on target_model is the class source_model gave; n_empty and
-- alpha_nonempty set silence apart (empty masks), as alpha_transferability_for explains.
-- Another parameter set: SELECT * FROM alpha_transferability_for('<params_hash>').
CREATE OR REPLACE VIEW alpha_transferability AS
SELECT * FROM alpha_transferability_for(NULL);
