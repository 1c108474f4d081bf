-- α-transferability of sufficient signals by rank (1 = the first sufficient mask found,
-- 2.. = further pairwise-disjoint ones, when explanations asked for n_sufficient > 1), for
-- each task's shown parameter set. Rank 1 equals alpha_transferability's sufficient cells.
-- Another parameter set: SELECT * FROM alpha_by_rank_for('<params_hash>').
CREATE OR REPLACE VIEW alpha_by_rank AS
SELECT * FROM alpha_by_rank_for(NULL);
