-- α-transferability (the paper's definition 5): the share of source_model's sufficient
-- (or complete) signals whose top-1 class on target_model is the class source_model gave.
-- The diagonal (source = target) is kept: it is 1 by construction and checks the data.
CREATE OR REPLACE VIEW alpha_transferability AS
SELECT
    m.task,
    c.dataset,
    s.kind,
    s.source_model,
    s.target_model,
    count(*) AS n_signals,
    avg(CASE WHEN s.top1 = s.source_class THEN 1.0 ELSE 0.0 END) AS alpha,
    s.params_hash
FROM signal_probs AS s
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = s.source_model
WHERE s.kind IN ('sufficient', 'complete')
GROUP BY m.task, c.dataset, s.kind, s.source_model, s.target_model, s.params_hash;
