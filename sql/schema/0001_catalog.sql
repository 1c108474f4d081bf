-- The catalog (tasks, datasets, models, loaded from ingest/*.toml) and the clips.
-- No foreign keys: DuckDB forbids updating rows that others reference (dataset relocate),
-- so references are checked by the code that writes them.

CREATE TABLE tasks (
    task            VARCHAR PRIMARY KEY,
    labels          VARCHAR[] NOT NULL,      -- in task order: probability vectors follow it
    sample_rate     INTEGER NOT NULL,
    min_duration_s  DOUBLE NOT NULL,
    source_file     VARCHAR                  -- the TOML it came from
);

CREATE TABLE datasets (
    dataset         VARCHAR PRIMARY KEY,
    task            VARCHAR NOT NULL,
    root            VARCHAR NOT NULL,        -- absolute; clip paths are relative to it
    labels_from     VARCHAR NOT NULL,        -- folder | csv | regex
    label_spec      VARCHAR,                 -- the csv file or the regex
    source_file     VARCHAR
);

CREATE TABLE models (
    model           VARCHAR PRIMARY KEY,     -- e.g. vc3
    task            VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,        -- zoo | hf
    ref             VARCHAR NOT NULL,        -- absolute path or hub id
    backbone        VARCHAR,
    n_params        BIGINT,
    labels          VARCHAR[] NOT NULL,      -- the model's own outputs, in its order
    label_map       VARCHAR,                 -- JSON: model label -> task label
    reported_accuracy DOUBLE,
    source_file     VARCHAR
);

CREATE SEQUENCE clip_ids START 1;

CREATE TABLE clips (
    clip_id             INTEGER PRIMARY KEY DEFAULT nextval('clip_ids'),
    dataset             VARCHAR NOT NULL,
    path                VARCHAR NOT NULL,    -- relative to the dataset's root
    sha256              VARCHAR NOT NULL,
    label               VARCHAR NOT NULL,
    duration_s          DOUBLE NOT NULL,
    native_sample_rate  INTEGER NOT NULL,
    native_channels     INTEGER NOT NULL,
    native_subtype      VARCHAR,             -- e.g. PCM_16, FLOAT
    n_samples           INTEGER NOT NULL,    -- after resampling to the task's rate
    audio               BLOB,                -- optional: FLAC at the task's rate, self-contained file
    added_at            TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (dataset, path)
);

CREATE TABLE rejected_clips (
    dataset     VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    seen_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (dataset, path)
);
