-- Flat-earthers: models that neither are listened to nor listen. The rule: a model is a
-- flat-earther when both its avg_out and its avg_in lie more than `margin` (absolute α,
-- 0.1 in the view) below the mean of the *other* models of the same task, dataset and
-- kind. Every model is listed with its gaps, so a reader can see how close the call was.
-- Use flat_earthers_at(margin) for another margin.
CREATE OR REPLACE MACRO flat_earthers_at(margin) AS TABLE
WITH peers AS (
    SELECT
        *,
        (sum(avg_out) OVER g - avg_out) / nullif(count(*) OVER g - 1, 0) AS peers_out,
        (sum(avg_in) OVER g - avg_in) / nullif(count(*) OVER g - 1, 0) AS peers_in
    FROM transferability_summary
    WINDOW g AS (PARTITION BY task, dataset, kind, params_hash)
)
SELECT
    task, dataset, kind, model, avg_out, avg_in, peers_out, peers_in,
    avg_out - peers_out AS gap_out,
    avg_in - peers_in AS gap_in,
    coalesce(avg_out < peers_out - margin AND avg_in < peers_in - margin, false) AS flat_earther,
    params_hash
FROM peers;
