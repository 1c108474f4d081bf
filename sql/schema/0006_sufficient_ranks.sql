-- Further sufficient masks of an explanation, when it was asked for several
-- (freqrex parameter n_sufficient > 1): rank 2, 3, … in the order the search found them,
-- each disjoint from every earlier rank and from explanations.sufficient_mask (rank 1),
-- and each re-verified to keep the class before it was stored. Their signals are in
-- signal_probs with kind 'sufficient-<rank>' (rank 1 keeps kind 'sufficient'), so the
-- rank is part of that table's natural key and rank-1 rows are untouched. Warehouses
-- made with n_sufficient = 1 have no rows here.
CREATE TABLE sufficient_ranks (
    model           VARCHAR NOT NULL,
    clip_id         INTEGER NOT NULL,
    params_hash     VARCHAR NOT NULL,
    rank            SMALLINT NOT NULL CHECK (rank >= 2),
    mask            BLOB NOT NULL,           -- packed bits (numpy packbits, big bit order)
    size            INTEGER NOT NULL,        -- bins kept (never 0: an empty mask is rank 1's)
    run_id          UUID NOT NULL,
    PRIMARY KEY (model, clip_id, params_hash, rank)
);
