-- Every stored sufficient (rank 1) and complete mask's kept bands in Hz (mask_bands), one
-- row per band, for every parameter set: task, params_hash, model, clip_id, kind
-- ('sufficient' or 'complete'), then mask_bands' columns. Explanations over rfft bins
-- only (parameter space 'fft'); bin_hz is the spacing of the clip's bins; clip_native_hz is the highest frequency the clip's
-- recording holds (half its native sample rate: above it a resampled clip has nothing).
-- Example: SELECT kind, lo_hz, hi_hz, bins FROM kept_bands
--          WHERE model = 'vc3' AND clip_id = 1 ORDER BY kind, band
CREATE OR REPLACE VIEW kept_bands AS
WITH masks AS (
    SELECT e.model, e.clip_id, e.params_hash, 'sufficient' AS kind, e.sufficient_mask AS mask,
        e.n_bins
    FROM explanations AS e
    UNION ALL
    SELECT e.model, e.clip_id, e.params_hash, 'complete' AS kind, e.complete_mask AS mask,
        e.n_bins
    FROM explanations AS e
)
SELECT
    m.task,
    k.params_hash,
    k.model,
    k.clip_id,
    k.kind,
    b.band,
    b.first_bin,
    b.bins,
    b.lo_hz,
    b.hi_hz,
    t.sample_rate / c.n_samples AS bin_hz,
    c.native_sample_rate / 2 AS clip_native_hz
FROM masks AS k
JOIN models AS m ON m.model = k.model
JOIN clips AS c ON c.clip_id = k.clip_id
JOIN datasets AS d ON d.dataset = c.dataset
JOIN tasks AS t ON t.task = d.task
LEFT JOIN freqrex_params AS p ON p.params_hash = k.params_hash
CROSS JOIN LATERAL mask_bands(k.mask, k.n_bins, c.n_samples, t.sample_rate) AS b
WHERE k.mask IS NOT NULL
    AND coalesce(p.params ->> 'space', 'fft') = 'fft'
    AND k.n_bins = c.n_samples // 2 + 1;
