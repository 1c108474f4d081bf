-- Accuracy of each model on each dataset: the share of clips whose top-1 class is the label.
CREATE OR REPLACE VIEW model_accuracy AS
SELECT
    m.task,
    c.dataset,
    o.model,
    count(*) AS n_clips,
    avg(CASE WHEN t.labels[o.top1 + 1] = c.label THEN 1.0 ELSE 0.0 END) AS accuracy
FROM original_probs AS o
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = o.model
JOIN tasks AS t ON t.task = m.task
GROUP BY m.task, c.dataset, o.model;
