-- Each model's rendering noise floor (src/sigwarehouse/noise_floor.py): how far its
-- answer moves when a signal is rebuilt in ways that should not matter (float32 or
-- float64 transforms, a 16-bit WAV round trip, that round trip with +-1 LSB), measured on
-- sparse signals of its task's first clips: each clip's 1, 4, 16 and 64 strongest rfft
-- bins alone, and the whole clip. A signal's move is the largest change of any class
-- probability from the float64 rendering. `noise_floor` is the 0.9 quantile of the
-- moves: the decision margin the model's search starts from (stored with each
-- explanation as minimality.decision_margin, which may be wider where a clip needed it).
-- Stored by `sigwh ingest --model M` before M explains its first clip; one row per model
-- and method, never recomputed, so every explanation of M is searched with the same one.
CREATE TABLE model_noise_floors (
    model           VARCHAR NOT NULL,
    method          SMALLINT NOT NULL,       -- noise_floor.METHOD
    clip_ids        INTEGER[] NOT NULL,      -- the clips measured on
    n_signals       INTEGER NOT NULL,        -- signals with a finite answer
    max_move        FLOAT NOT NULL,
    median_move     FLOAT NOT NULL,
    top1_differs    FLOAT NOT NULL,          -- share of signals whose top-1 differs between renderings
    noise_floor     FLOAT NOT NULL,          -- 0.9 quantile of the moves
    run_id          UUID NOT NULL,
    PRIMARY KEY (model, method)
);
