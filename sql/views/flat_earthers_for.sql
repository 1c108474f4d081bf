-- Flat-earthers: models that neither are listened to nor listen. The rule: a model is a
-- flat-earther when both its avg_out and its avg_in lie more than `margin` (absolute α,
-- 0.1 in the view) below the mean of the *other* models of the same task, dataset and
-- kind. Every model is listed with its gaps, so a reader can see how close the call was.
-- This macro takes the margin and a parameter set `hash` (NULL: each task's shown set,
-- see parameter_sets); flat_earthers_at(margin) and the view flat_earthers (margin 0.1)
-- give the shown sets.
-- The call is made on α over all signals, as the paper does. Beside it, the same figures
-- over non-empty signals only (silence is not evidence: see alpha_nonempty): n_empty of
-- the model's n_signals are empty, and gap_out_nonempty / gap_in_nonempty compare
-- avg_out_nonempty / avg_in_nonempty with the mean of the other models' that have one.
-- Gaps are rounded to 12 decimals before the call: DuckDB may add a window's floats in
-- any order, and a gap that is 0 exactly (a tie at margin 0) must not come out as
-- ±1e-17 and flip the call from one query to the next.
CREATE OR REPLACE MACRO flat_earthers_for(margin, hash) AS TABLE
WITH peers AS (
    SELECT
        *,
        (sum(avg_out) OVER g - avg_out) / nullif(count(*) OVER g - 1, 0) AS peers_out,
        (sum(avg_in) OVER g - avg_in) / nullif(count(*) OVER g - 1, 0) AS peers_in,
        (sum(avg_out_nonempty) OVER g - coalesce(avg_out_nonempty, 0))
            / nullif(count(avg_out_nonempty) OVER g - (avg_out_nonempty IS NOT NULL)::INTEGER, 0)
            AS peers_out_nonempty,
        (sum(avg_in_nonempty) OVER g - coalesce(avg_in_nonempty, 0))
            / nullif(count(avg_in_nonempty) OVER g - (avg_in_nonempty IS NOT NULL)::INTEGER, 0)
            AS peers_in_nonempty
    FROM transferability_summary_for(hash)
    WINDOW g AS (PARTITION BY task, dataset, kind, params_hash)
)
SELECT
    task, dataset, kind, model, avg_out, avg_in, peers_out, peers_in,
    round(avg_out - peers_out, 12) AS gap_out,
    round(avg_in - peers_in, 12) AS gap_in,
    coalesce(gap_out < -margin AND gap_in < -margin, false) AS flat_earther,
    n_signals,
    n_empty,
    avg_out_nonempty,
    avg_in_nonempty,
    round(avg_out_nonempty - peers_out_nonempty, 12) AS gap_out_nonempty,
    round(avg_in_nonempty - peers_in_nonempty, 12) AS gap_in_nonempty,
    params_hash
FROM peers;
