-- β-transferability with parameter eps in (0, 1]: the share of source_model's sufficient
-- (or complete) signals whose output entropy on target_model is at most
-- eps * log2(n_classes) bits. Usage: SELECT * FROM beta_transferability(0.5).
CREATE OR REPLACE MACRO beta_transferability(eps) AS TABLE
SELECT
    m.task,
    c.dataset,
    s.kind,
    s.source_model,
    s.target_model,
    count(*) AS n_signals,
    avg(CASE WHEN s.entropy_bits <= eps * log2(len(t.labels)) THEN 1.0 ELSE 0.0 END) AS beta,
    s.params_hash
FROM signal_probs AS s
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = s.source_model
JOIN tasks AS t ON t.task = m.task
WHERE s.kind IN ('sufficient', 'complete')
GROUP BY m.task, c.dataset, s.kind, s.source_model, s.target_model, s.params_hash;
