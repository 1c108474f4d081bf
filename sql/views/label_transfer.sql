-- Label transfer (the paper's section 5.3): a class composite's mask ("from", e.g. fake)
-- applied to the clips the model gives another class ("to", e.g. real): "fake's mask
-- applied to clips called real"; share_flipped is the share the model then gives the
-- composite's class. The job also stores the clips the model already gives the "from"
-- class (controls, so a rerun knows they were checked); they are left out here.
CREATE OR REPLACE VIEW label_transfer AS
SELECT
    m.task,
    c.dataset,
    l.model,
    t.labels[l.signature_class + 1] AS from_class,
    t.labels[l.orig_top1 + 1] AS to_class,
    l.mask,
    count(*) AS n_clips,
    count(*) FILTER (l.top1 = l.signature_class) AS n_flipped,
    avg(CASE WHEN l.top1 = l.signature_class THEN 1.0 ELSE 0.0 END) AS share_flipped,
    avg(l.kept_bins / l.n_bins) AS mean_kept_share,
    l.params_hash,
    l.seed
FROM label_transfers AS l
JOIN clips AS c USING (clip_id)
JOIN models AS m ON m.model = l.model
JOIN tasks AS t ON t.task = m.task
WHERE l.orig_top1 <> l.signature_class
GROUP BY m.task, c.dataset, l.model, l.signature_class, l.orig_top1, t.labels, l.mask,
         l.params_hash, l.seed;
