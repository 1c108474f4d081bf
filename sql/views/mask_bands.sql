-- The kept bands of a stored mask, in Hz: one row per run of consecutive kept rfft bins.
-- Usage: SELECT * FROM mask_bands(mask, n_bins, n_samples, sample_rate), e.g. on a stored
-- explanation (kept_bands does this for every one):
--   SELECT b.* FROM explanations e JOIN clips c USING (clip_id)
--   JOIN datasets d USING (dataset) JOIN tasks t USING (task),
--   LATERAL mask_bands(e.sufficient_mask, e.n_bins, c.n_samples, t.sample_rate) b
--   WHERE e.model = 'vc3' AND e.clip_id = 1
-- A mask is stored packed 8 variables a byte in numpy's big bit order (np.packbits): the
-- first variable is the highest bit of the first byte, which is also the first character
-- of DuckDB's BIT text, so the BIT text cut to n_bins characters is the mask in order.
-- Bin k of an n_samples-sample clip at sample_rate is at k * sample_rate / n_samples Hz.
-- band: 1, 2, … from the lowest; first_bin: the band's first kept bin (0-based); bins:
-- how many it keeps; lo_hz and hi_hz: the frequencies of its first and last kept bins
-- (a one-bin band has lo_hz = hi_hz). An empty or NULL mask gives no rows. For masks over
-- rfft bins only (parameter space 'fft', the paper's); an STFT-space mask is not one.
CREATE OR REPLACE MACRO mask_bands(mask, n_bins, n_samples, sample_rate) AS TABLE
WITH runs AS (
    -- each match is the zeros before a band and the band: the matches tile the mask
    SELECT
        unnest(regexp_extract_all(left(mask::BIT::VARCHAR, n_bins), '0*1+')) AS run,
        generate_subscripts(regexp_extract_all(left(mask::BIT::VARCHAR, n_bins), '0*1+'), 1)
            AS band
),
placed AS (
    SELECT
        band,
        sum(length(run)) OVER (ORDER BY band) AS stop,
        length(ltrim(run, '0')) AS bins
    FROM runs
)
SELECT
    band::INTEGER AS band,
    (stop - bins)::INTEGER AS first_bin,
    bins::INTEGER AS bins,
    (stop - bins) * sample_rate / n_samples AS lo_hz,
    (stop - 1) * sample_rate / n_samples AS hi_hz
FROM placed
ORDER BY band;
