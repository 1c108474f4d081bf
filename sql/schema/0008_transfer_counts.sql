-- Per-cell counts of the transferability signals (src/sigwarehouse/transfer_counts.py
-- explains them): the α and β views read these few rows per cell instead of scanning
-- signal_probs, which took 9-31 s at 10^8 rows. The writer keeps them in the same
-- transaction as the rows; this migration counts what is stored, in one transaction
-- (an interrupted migration leaves nothing, and `sigwh migrate` starts it again).
CREATE TABLE transfer_counts (
    params_hash     VARCHAR NOT NULL,
    source_model    VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,        -- sufficient or complete
    target_model    VARCHAR NOT NULL,
    dataset         VARCHAR NOT NULL,
    mask            VARCHAR NOT NULL,        -- empty, kept or unknown (no mask stored)
    same_class      BOOLEAN NOT NULL,        -- the target's top-1 is the source's class
    eps_level       SMALLINT NOT NULL,       -- least k: entropy within beta's bound at eps = k/100
    n               BIGINT NOT NULL,
    PRIMARY KEY (params_hash, source_model, kind, target_model, dataset, mask, same_class,
                 eps_level)
);

-- The same count as transfer_counts.py's, frozen here as this migration ran.
INSERT INTO transfer_counts
WITH signals AS (
    SELECT
        s.params_hash, s.source_model, s.kind, s.target_model, c.dataset,
        CASE s.kind WHEN 'sufficient' THEN e.sufficient_size
                    WHEN 'complete' THEN e.complete_size END AS mask_size,
        s.top1 = s.source_class AS same_class,
        least(s.entropy_bits, log2(len(t.labels))::FLOAT) AS bits,
        log2(len(t.labels)) AS most
    FROM signal_probs AS s
    JOIN clips AS c USING (clip_id)
    JOIN models AS m ON m.model = s.source_model
    JOIN tasks AS t ON t.task = m.task
    LEFT JOIN explanations AS e
        ON e.model = s.source_model AND e.clip_id = s.clip_id AND e.params_hash = s.params_hash
    WHERE s.kind IN ('sufficient', 'complete')
),
guessed AS (
    SELECT *, least(greatest(ceil(bits / most * 100), 0), 100)::SMALLINT AS k0 FROM signals
)
SELECT
    params_hash, source_model, kind, target_model, dataset,
    CASE WHEN mask_size = 0 THEN 'empty' WHEN mask_size > 0 THEN 'kept' ELSE 'unknown' END,
    same_class,
    CASE WHEN k0 > 0 AND bits <= ((k0 - 1) / 100 * most)::FLOAT THEN k0 - 1
         WHEN bits <= (k0 / 100 * most)::FLOAT THEN k0
         ELSE k0 + 1 END::SMALLINT,
    count(*)
FROM guessed
GROUP BY ALL;
