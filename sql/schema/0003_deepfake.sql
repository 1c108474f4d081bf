-- The deepfake analyses of the paper's section 5: global composites, label transfer,
-- and ASR transcripts / STOI of the derived signals. As in 0002, every row has a natural
-- key and jobs write with INSERT OR IGNORE, so reruns and concurrent jobs store each
-- fact once. Classes are indexes into the task's labels, as in `explanations`.

-- One composite per (model, dataset, class, parameter set, seed): the sufficient signals
-- of `class` (from `model`'s explanations of the dataset's clips) superimposed greedily
-- by mean while `model` still says `class` (jobs/compose.py documents the procedure).
CREATE TABLE composites (
    model               VARCHAR NOT NULL,
    dataset             VARCHAR NOT NULL,
    class               SMALLINT NOT NULL,
    params_hash         VARCHAR NOT NULL,    -- of the explanations the members come from
    seed                BIGINT NOT NULL,     -- seeds the candidate order
    run_id              UUID NOT NULL,
    candidates          INTEGER[] NOT NULL,  -- clip ids in the order they were tried
    members             INTEGER[] NOT NULL,  -- clip ids kept (κ), in the order kept
    n_candidates        INTEGER NOT NULL,    -- non-empty sufficient signals of the class
    n_composed          INTEGER NOT NULL,    -- |κ|
    n_empty             INTEGER NOT NULL,    -- left out: sufficient mask keeps no bin (silence)
    n_samples           INTEGER NOT NULL,    -- the composite's length (0 without candidates)
    sample_rate         INTEGER NOT NULL,
    audio               BLOB,                -- FLAC (24-bit) of the composite; NULL when |κ| = 0
    probs               FLOAT[],             -- model's probabilities on the composite
    top1                SMALLINT,
    members_mask        BLOB,                -- union of the members' sufficient masks, mapped by
                                             -- frequency onto the composite's rfft bins (packed)
    members_mask_size   INTEGER,
    sufficient_mask     BLOB,                -- freqrex's sufficient mask of the composite itself
                                             -- (rfft bins of the composite, packed)
    sufficient_size     INTEGER,
    sufficient_reason   VARCHAR,             -- as in explanations
    queries             INTEGER NOT NULL,
    seconds             DOUBLE,
    reason              VARCHAR,             -- why there is no composite (|κ| = 0)
    PRIMARY KEY (model, dataset, class, params_hash, seed)
);

-- A class composite's mask applied to a clip the model gives another class (section 5.3):
-- the clip keeps only the bins the mask keeps (mapped by frequency), and the model is asked
-- again. The composite is the one of the clip's own dataset.
CREATE TABLE label_transfers (
    model               VARCHAR NOT NULL,
    clip_id             INTEGER NOT NULL,
    params_hash         VARCHAR NOT NULL,    -- the composite's
    seed                BIGINT NOT NULL,     -- the composite's
    signature_class     SMALLINT NOT NULL,   -- the composite's class ("from")
    mask                VARCHAR NOT NULL,    -- sufficient (the composite's own) | members (union)
    run_id              UUID NOT NULL,
    n_bins              INTEGER NOT NULL,    -- rfft bins of the clip
    kept_bins           INTEGER NOT NULL,
    orig_probs          FLOAT[] NOT NULL,
    orig_top1           SMALLINT NOT NULL,   -- the clip's class on the model before ("to")
    probs               FLOAT[] NOT NULL,    -- after the mask
    top1                SMALLINT NOT NULL,
    PRIMARY KEY (model, clip_id, params_hash, seed, signature_class, mask)
);

-- What an ASR model heard in a clip (kind 'original': source_model and params_hash are '')
-- and in source_model's sufficient, complete and inverse signals of it.
CREATE TABLE transcripts (
    asr                 VARCHAR NOT NULL,    -- pocketsphinx, or whisper:<checkpoint directory>
    clip_id             INTEGER NOT NULL,
    source_model        VARCHAR NOT NULL,
    params_hash         VARCHAR NOT NULL,
    kind                VARCHAR NOT NULL,    -- original, sufficient, complete, inverse
    text                VARCHAR NOT NULL,    -- lower case, '' when nothing was recognised
    seconds             DOUBLE,
    run_id              UUID NOT NULL,
    PRIMARY KEY (asr, clip_id, source_model, params_hash, kind)
);

-- STOI (pystoi, the original clip as the clean reference) of each derived signal.
CREATE TABLE signal_stoi (
    source_model        VARCHAR NOT NULL,
    clip_id             INTEGER NOT NULL,
    params_hash         VARCHAR NOT NULL,
    kind                VARCHAR NOT NULL,    -- sufficient, complete, inverse
    stoi                DOUBLE,              -- NULL when pystoi gives no number
    run_id              UUID NOT NULL,
    PRIMARY KEY (source_model, clip_id, params_hash, kind)
);
