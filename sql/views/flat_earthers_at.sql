-- Flat-earthers at `margin` for each task's shown parameter set (the rule is in
-- parameter_sets): models whose avg_out and avg_in both lie more than `margin` (absolute
-- α) below the mean of the other models of the same task, dataset and kind. The rule and
-- the columns are explained in flat_earthers_for, which takes a parameter set as well.
CREATE OR REPLACE MACRO flat_earthers_at(margin) AS TABLE
SELECT * FROM flat_earthers_for(margin, NULL);
