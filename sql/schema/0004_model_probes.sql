-- What each model says about signals that carry no evidence: the all-zero signal
-- ('silence') and white noise at -60 dBFS ('noise-60dbfs', RMS 10^(-60/20) of full scale
-- 1.0, numpy default_rng(0); jobs/probes.py makes both). Where the all-zero signal keeps a
-- clip's class, its sufficient mask is empty: this table says which class that is, per
-- model, for the report's silence card. Stored by `sigwh ingest --model M` when missing,
-- at the task's clip length (the median n_samples of the task's clips), since a model's
-- answer to silence can depend on the length. As elsewhere, the key is natural and jobs
-- write with INSERT OR IGNORE.
CREATE TABLE model_probes (
    model           VARCHAR NOT NULL,
    probe           VARCHAR NOT NULL,        -- silence | noise-60dbfs
    n_samples       INTEGER NOT NULL,        -- the probe's length, at the task's sample rate
    probs           FLOAT[] NOT NULL,        -- in task label order (NaN where the model gave NaN)
    top1            SMALLINT,                -- NULL when the output is not finite
    entropy_bits    FLOAT,                   -- NULL when the output is not finite
    run_id          UUID NOT NULL,
    PRIMARY KEY (model, probe, n_samples)
);
