-- What ingestion jobs store: runs, explanations (freqrex results), and class probabilities
-- of every model on original, sufficient, complete and inverse signals.
-- Rows are keyed so that a rerun or a second job can only ever insert the same facts
-- (INSERT OR IGNORE): no duplicates whatever order jobs run or die in.

CREATE TABLE runs (
    run_id          UUID PRIMARY KEY,
    job             VARCHAR NOT NULL,        -- ingest, compose, asr, ...
    model           VARCHAR,
    task            VARCHAR,
    dataset         VARCHAR,
    params          JSON,                    -- every parameter, the seed included
    params_hash     VARCHAR,
    seed            BIGINT,
    code_version    VARCHAR NOT NULL,        -- package version + git commit when known
    device          VARCHAR,
    host            VARCHAR,
    pid             INTEGER,
    started_at      TIMESTAMP NOT NULL,
    ended_at        TIMESTAMP,
    status          VARCHAR NOT NULL,        -- running, done, failed, interrupted, abandoned
    clips_done      INTEGER NOT NULL DEFAULT 0,
    queries         BIGINT NOT NULL DEFAULT 0,
    model_seconds   DOUBLE NOT NULL DEFAULT 0,  -- time inside model forward passes
    total_seconds   DOUBLE NOT NULL DEFAULT 0,
    n_errors        INTEGER NOT NULL DEFAULT 0,
    message         VARCHAR
);

-- The parameter sets explanations were made with, by hash.
CREATE TABLE freqrex_params (
    params_hash     VARCHAR PRIMARY KEY,
    params          JSON NOT NULL
);

-- One freqrex explanation per (model, clip, parameter set).
CREATE TABLE explanations (
    model               VARCHAR NOT NULL,
    clip_id             INTEGER NOT NULL,
    params_hash         VARCHAR NOT NULL,
    run_id              UUID NOT NULL,
    n_bins              INTEGER NOT NULL,    -- variables: rfft bins of the clip (or STFT cells)
    orig_class          SMALLINT NOT NULL,   -- index into the task's labels
    orig_conf           FLOAT NOT NULL,
    responsibility      BLOB NOT NULL,       -- zlib-compressed little-endian float16 per variable
    sufficient_mask     BLOB,                -- packed bits (numpy packbits, big bit order)
    sufficient_size     INTEGER,             -- bins kept; 0 when the empty signal keeps the class
    sufficient_reason   VARCHAR,             -- empty-signal-keeps-class, or why there is no mask
    complete_mask       BLOB,                -- NULL when no δ-complete mask exists
    complete_size       INTEGER,
    complete_reason     VARCHAR,             -- why there is none
    queries             INTEGER NOT NULL,
    minimality          JSON,                -- share of single-band removals that break each property
    seconds             DOUBLE,
    PRIMARY KEY (model, clip_id, params_hash)
);

-- Each model's class probabilities on each clip as recorded.
CREATE TABLE original_probs (
    model           VARCHAR NOT NULL,
    clip_id         INTEGER NOT NULL,
    probs           FLOAT[] NOT NULL,        -- in task label order
    top1            SMALLINT NOT NULL,
    entropy_bits    FLOAT NOT NULL,
    run_id          UUID NOT NULL,
    PRIMARY KEY (model, clip_id)
);

-- Every model's probabilities on the signals that source_model's explanation defines.
CREATE TABLE signal_probs (
    source_model    VARCHAR NOT NULL,
    clip_id         INTEGER NOT NULL,
    params_hash     VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,        -- sufficient, complete, inverse
    target_model    VARCHAR NOT NULL,
    source_class    SMALLINT NOT NULL,       -- the class source_model gave the original clip
    probs           FLOAT[] NOT NULL,
    top1            SMALLINT NOT NULL,
    entropy_bits    FLOAT NOT NULL,
    run_id          UUID NOT NULL,
    PRIMARY KEY (source_model, clip_id, params_hash, kind, target_model)
);

-- A clip a job could not process (the model returned NaN, the search failed, ...).
CREATE TABLE job_errors (
    run_id          UUID NOT NULL,
    model           VARCHAR,
    clip_id         INTEGER,
    stage           VARCHAR NOT NULL,
    error           VARCHAR NOT NULL,
    happened_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
