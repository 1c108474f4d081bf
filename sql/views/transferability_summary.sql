-- Per model: avg_out = mean α of its signals over the other models (the paper's `avg`
-- column); avg_in = mean α of the other models' signals on it (how readily it accepts).
-- The diagonal is left out of both.
CREATE OR REPLACE VIEW transferability_summary AS
WITH off_diagonal AS (
    SELECT * FROM alpha_transferability WHERE source_model <> target_model
),
outgoing AS (
    SELECT task, dataset, kind, params_hash, source_model AS model, avg(alpha) AS avg_out
    FROM off_diagonal GROUP BY ALL
),
incoming AS (
    SELECT task, dataset, kind, params_hash, target_model AS model, avg(alpha) AS avg_in
    FROM off_diagonal GROUP BY ALL
)
SELECT task, dataset, kind, model, o.avg_out, i.avg_in, params_hash
FROM outgoing AS o
FULL JOIN incoming AS i USING (task, dataset, kind, params_hash, model);
