-- Per model, for each task's shown parameter set (the rule is in parameter_sets):
-- avg_out = mean α of its signals over the other models (the paper's `avg` column);
-- avg_in = mean α of the other models' signals on it (how readily it accepts); beside
-- them the silence columns that transferability_summary_for explains.
-- Another parameter set: SELECT * FROM transferability_summary_for('<params_hash>').
CREATE OR REPLACE VIEW transferability_summary AS
SELECT * FROM transferability_summary_for(NULL);
