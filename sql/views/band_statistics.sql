-- Where in frequency each model's masks keep the clip, per task, model and kind
-- ('sufficient', 'complete'), for each task's shown parameter set (parameter_sets), from
-- kept_bands. A mask counts once per clip (the clip is the unit); masks that keep no bin
-- (silence) are left out and counted in n_empty.
--   n_masks: non-empty masks; n_empty: empty ones (sufficient only: where silence keeps
--   the class); median_bins, median_bands: kept bins and bands of the median mask;
--   n_few_bins: masks of 3 kept bins or fewer;
--   median_kept_hz: the median over masks of each mask's median kept frequency;
--   share_bins_below_300hz: kept bins below 300 Hz over all kept bins, pooled over the
--   masks (a share of bandwidth: the spectrum's energy is in the audio, not in SQL);
--   n_below_20hz: masks whose kept bins all lie below 20 Hz (infrasound: nothing a
--   listener, or a mel filter bank starting at 20 Hz, hears);
--   n_above_native: masks whose kept bins all lie above the clip's native band (half the
--   recording's sample rate: a resampled clip holds nothing there). The zoo models take
--   the task's sample rate, whose band ends at its Nyquist frequency, above every bin.
CREATE OR REPLACE VIEW band_statistics AS
WITH per_band AS (
    SELECT
        k.*,
        sum(k.bins) OVER (w ORDER BY k.band) - k.bins AS bins_before,
        (sum(k.bins) OVER w - 1) // 2 AS median_at,  -- the lower median kept bin, 0-based
        greatest(0, least(k.bins, ceil(300 / k.bin_hz)::BIGINT - k.first_bin)) AS below_300
    FROM kept_bands AS k
    JOIN parameter_sets AS s ON s.task = k.task AND s.params_hash = k.params_hash AND s.shown
    WINDOW w AS (PARTITION BY k.params_hash, k.model, k.clip_id, k.kind)
),
per_mask AS (
    SELECT
        task,
        params_hash,
        model,
        clip_id,
        kind,
        sum(bins) AS bins,
        count(*) AS bands,
        sum(below_300) AS below_300,
        max(hi_hz) AS top_hz,
        min(lo_hz) AS bottom_hz,
        any_value(clip_native_hz) AS native_hz,
        any_value((first_bin + median_at - bins_before) * bin_hz)
            FILTER (WHERE median_at >= bins_before AND median_at < bins_before + bins)
            AS median_hz
    FROM per_band
    GROUP BY task, params_hash, model, clip_id, kind
),
empty AS (
    SELECT e.model, e.params_hash, count(*) AS n_empty
    FROM explanations AS e
    WHERE e.sufficient_size = 0
    GROUP BY e.model, e.params_hash
)
SELECT
    p.task,
    p.params_hash,
    p.model,
    p.kind,
    count(*) AS n_masks,
    CASE WHEN p.kind = 'sufficient' THEN coalesce(any_value(z.n_empty), 0) ELSE 0 END
        AS n_empty,
    median(p.bins) AS median_bins,
    median(p.bands) AS median_bands,
    count(*) FILTER (WHERE p.bins <= 3) AS n_few_bins,
    median(p.median_hz) AS median_kept_hz,
    sum(p.below_300) / sum(p.bins) AS share_bins_below_300hz,
    count(*) FILTER (WHERE p.top_hz < 20) AS n_below_20hz,
    count(*) FILTER (WHERE p.bottom_hz > p.native_hz) AS n_above_native
FROM per_mask AS p
LEFT JOIN empty AS z ON z.model = p.model AND z.params_hash = p.params_hash
GROUP BY p.task, p.params_hash, p.model, p.kind;
