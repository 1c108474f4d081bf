"""The batched oracle on a toy model that reports exactly what it was asked.

The model (`Decoder`) reads a signal's rfft and answers with a row that describes it:
which bins it holds, the amplitude they hold (the clip's), the clip's length and the
number of the model call. The clips are impulses, whose rfft is their amplitude in
every bin, so a masked clip holds exactly the mask's bins and an answer names the
clip (amplitude, length) and the mask (bins) the oracle built. Clips A and C are 30
samples long (16 bins), B is 20 (11 bins); A, B, C have amplitudes 1, 2, 4. The tests
check, with every expectation derived by hand in the comments:

- `Intervals`: the CSR form of per-request interval lists, and its gather;
- `MaskRequests`: rank and sizes go together; its gather keeps every field row-aligned;
- the oracle's set-up: clips grouped by length, each clip's variables, the magnitudes;
- the mask of a request: rank prefix | base row | kept intervals, minus dropped
  intervals, complemented where asked; a clip only uses its own variables;
- batching: a length group's requests go to the model in request order, at most
  `batch_size` per call, lengths never mixed, several request sets packed together;
  the batch size never changes an answer, and answers come back in request order;
- dedup: a (clip, mask) pair asked before, or twice in one call, is answered from what
  the model said the first time (the originals answer the full masks); `fresh`
  evaluates anew and leaves the stored answers alone; the counters (queries per clip
  and phase, model batches, round trips, reused answers) count what happened;
- fingerprints: every one of the 2**16 masks of a 16-bin clip gets its own key, each
  an exact sum of per-bin integer weights below 2**31; drawing them leaves torch's
  global random generator alone.

The oracle, the spaces and the mask building are the real ones; only the model is a toy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sigwarehouse.freqrex.oracle import Intervals, MaskRequests, Oracle
from sigwarehouse.freqrex.spectral import FFTSpace
from sigwarehouse.models.base import AudioClassifier

pytestmark = pytest.mark.core  # run for every mutant by `make mutation`

WIDTH = 16  # bins of the 30-sample clips; the 20-sample clip has 11
AMP, LENGTH, CALL = WIDTH, WIDTH + 1, WIDTH + 2  # columns of a Decoder answer after the bins


class Decoder(AudioClassifier):
    """Answers, per signal: 1 for each rfft bin it holds (columns 0-15), the amplitude
    those bins hold, the signal's length and the number of this model call (from 0)."""

    def __init__(self):
        super().__init__([f"bin{k}" for k in range(WIDTH)] + ["amplitude", "length", "call"], 16000)
        self.asked: list[tuple[int, int, frozenset[int]]] = []  # (length, amplitude, bins)
        self.batches: list[tuple[int, int]] = []  # (length, signals) per call
        self.dtypes: list[torch.dtype] = []

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        self.dtypes.append(waves.dtype)
        spec = torch.fft.rfft(waves.double(), dim=-1).abs()
        held = spec > 0.5  # a held bin holds the clip's amplitude (1, 2 or 4), a removed one 0
        amp = spec.max(dim=1).values.round()
        out = torch.zeros((len(waves), WIDTH + 3), dtype=torch.float64)
        out[:, : spec.shape[1]] = held.double()
        out[:, AMP] = amp
        out[:, LENGTH] = waves.shape[1]
        out[:, CALL] = len(self.batches)
        for row, a in zip(held, amp.tolist(), strict=True):
            self.asked.append(
                (waves.shape[1], int(a), frozenset(torch.nonzero(row).ravel().tolist()))
            )
        self.batches.append((waves.shape[1], len(waves)))
        return out.float()


def impulse(length: int, amplitude: float) -> torch.Tensor:
    wave = torch.zeros(length, dtype=torch.float64)
    wave[0] = amplitude  # rfft: the amplitude in every bin
    return wave


A, B, C = 0, 1, 2  # oracle rows


def oracle(batch_size: int = 64) -> Oracle:
    return Oracle(Decoder(), [impulse(30, 1), impulse(20, 2), impulse(30, 4)], FFTSpace, batch_size)


def seen(row) -> tuple[int, int, set[int]]:
    """(length, amplitude, bins) of the signal an answer row describes."""
    row = np.asarray(row)
    return int(row[LENGTH]), int(row[AMP]), set(np.flatnonzero(row[:WIDTH] > 0.5).tolist())


def clip_of(c: int, *bins: int) -> tuple[int, int, set[int]]:
    """What the model must see for clip c masked to `bins` (amplitude 0 when empty)."""
    length, amp = [(30, 1), (20, 2), (30, 4)][c]
    return length, amp if bins else 0, set(bins)


def keep(*per_request) -> Intervals:
    return Intervals.from_lists([list(x) for x in per_request])


# --- Intervals and MaskRequests -------------------------------------------------------


def test_intervals_from_lists_is_csr_with_int64_arrays():
    iv = keep([(0, 2), (5, 7)], [], [(3, 4)])
    assert iv.row_ptr.tolist() == [0, 2, 2, 3]
    assert iv.starts.tolist() == [0, 5, 3] and iv.ends.tolist() == [2, 7, 4]
    none = keep([], [])  # no interval at all: still int64, still one pointer per request
    assert none.row_ptr.tolist() == [0, 0, 0]
    assert none.starts.shape == none.ends.shape == (0,)
    for x in (iv, none):
        assert x.row_ptr.dtype == x.starts.dtype == x.ends.dtype == np.int64


@pytest.mark.parametrize(
    ("rows", "row_ptr", "starts", "ends"),
    [
        # request 2 owns (3, 4), request 0 (0, 2) and (5, 7), request 1 nothing
        ([2, 0, 0, 1], [0, 1, 3, 5, 5], [3, 0, 5, 0, 5], [4, 2, 7, 2, 7]),
        ([1, 2, 0, 0], [0, 0, 1, 3, 5], [3, 0, 5, 0, 5], [4, 2, 7, 2, 7]),
        ([0], [0, 2], [0, 5], [2, 7]),
        ([1], [0, 0], [], []),
        ([], [0], [], []),
    ],
)
def test_intervals_take_gathers_the_requests_in_the_order_given(rows, row_ptr, starts, ends):
    got = keep([(0, 2), (5, 7)], [], [(3, 4)]).take(np.array(rows, dtype=np.int64))
    assert got.row_ptr.tolist() == row_ptr
    assert got.starts.tolist() == starts and got.ends.tolist() == ends


def test_rank_and_sizes_go_together():
    rank = torch.zeros((1, WIDTH), dtype=torch.int64)
    with pytest.raises(ValueError, match="^rank and sizes go together$"):
        MaskRequests(np.array([0]), rank=rank)
    with pytest.raises(ValueError, match="^rank and sizes go together$"):
        MaskRequests(np.array([0]), sizes=np.array([1]))
    MaskRequests(np.array([0]), rank=rank, sizes=np.array([1]))
    MaskRequests(np.array([0]))


@pytest.mark.parametrize("clip", [[0, 2], np.array([0, 2], dtype=np.int32)])
def test_request_clips_become_an_int64_array(clip):
    req = MaskRequests(clip)
    assert req.clip.dtype == np.int64 and req.clip.tolist() == [0, 2]


def test_mask_requests_take_keeps_every_field_aligned_with_the_rows():
    rank = torch.zeros((3, WIDTH), dtype=torch.int64)
    base = torch.zeros((2, WIDTH), dtype=torch.bool)
    req = MaskRequests(
        np.array([0, 1, 2]),
        rank=rank,
        sizes=np.array([5, 6, 7]),
        base=base,
        base_row=np.array([1, 0, 1]),
        keep=keep([(0, 1)], [(1, 2)], [(2, 3)]),
        drop=keep([], [(4, 5)], []),
        invert=np.array([True, False, True]),
    )
    got = req.take(np.array([2, 0]))
    assert got.clip.tolist() == [2, 0] and got.sizes.tolist() == [7, 5]
    assert got.rank is rank and got.base is base
    assert got.base_row.tolist() == [1, 1]
    assert got.keep.starts.tolist() == [2, 0] and got.keep.row_ptr.tolist() == [0, 1, 2]
    assert got.drop.row_ptr.tolist() == [0, 0, 0]
    assert got.invert.tolist() == [True, True]
    # without base_row the base row is the clip's; without base there is none
    plain = MaskRequests(np.array([2, 0, 1]), base=base).take(np.array([2, 0]))
    assert plain.base_row.tolist() == [1, 2]
    assert plain.sizes is None and plain.rank is None and plain.keep is None
    assert plain.drop is None and plain.invert is None
    assert (
        MaskRequests(np.array([0, 1]), base_row=np.array([1, 1])).take(np.array([0])).base_row
        is None
    )


# --- set-up -------------------------------------------------------------------------------


def test_clips_are_grouped_by_length_and_keep_their_own_variables():
    o = oracle()
    # lengths 30, 20, 30: group 0 is the 20-sample length, group 1 the 30-sample one;
    # A and C are rows 0 and 1 of group 1, B row 0 of group 0
    assert o.n_clips == 3 and o.batch_size == 64
    assert o.group.tolist() == [1, 0, 1]
    assert o.local.tolist() == [0, 0, 1]
    assert [s.n_samples for s in o.spaces] == [20, 30]
    assert o.space_of(B).n_samples == 20 and o.space_of(C).n_samples == 30
    assert o.n_vars.tolist() == [16, 11, 16] and o.n_vars.dtype == np.int64
    assert o.width == 16
    assert [w.dtype for w in o.waves] == [torch.float32, torch.float32]  # given float64
    assert o.queries.tolist() == [0, 0, 0] and o.queries.dtype == np.int64
    assert o.by_phase == {} and o.answers == {}
    assert (o.batches, o.rounds, o.reused) == (0, 0, 0)
    assert Oracle(Decoder(), [impulse(30, 1)], FFTSpace).batch_size == 64


def test_magnitudes_are_the_clips_amplitudes_and_minus_infinity_past_a_clip():
    mag = oracle().magnitude()
    expected = torch.tensor([[1.0] * 16, [2.0] * 11 + [-torch.inf] * 5, [4.0] * 16])
    assert torch.allclose(mag, expected, atol=1e-5)
    assert torch.isneginf(mag[B, 11:]).all()


def test_an_oracle_without_clips_answers_nothing():
    o = Oracle(Decoder(), [], FFTSpace)
    assert (o.n_clips, o.width, o.spaces) == (0, 0, [])
    assert o.magnitude().shape == (0, 0)
    out = o.run(MaskRequests(np.zeros(0, dtype=np.int64)), "none")
    assert out.shape == (0, WIDTH + 3) and o.classifier.batches == []


# --- masks --------------------------------------------------------------------------------

# rank rows: A and C by bin (bin v at rank v), B reversed (bin v at rank 15 - v)
RANK = torch.stack([torch.arange(16), 15 - torch.arange(16), torch.arange(16)])


def answers(o: Oracle, req: MaskRequests, phase: str = "test") -> list:
    return [seen(row) for row in o.run(req, phase)]


def test_a_rank_prefix_keeps_the_variables_ranked_below_the_size():
    req = MaskRequests(np.array([A, B, C, A]), rank=RANK, sizes=np.array([3, 7, 0, 15]))
    # A, size 3: bins 0-2. B, size 7: of its 11 bins those with 15 - v < 7, i.e. 9 and 10
    # (ranks 0-4 are past its end). C, size 0: nothing. A, size 15: all but bin 15.
    assert answers(oracle(), req) == [
        clip_of(A, 0, 1, 2),
        clip_of(B, 9, 10),
        clip_of(C),
        clip_of(A, *range(15)),
    ]


def test_a_base_row_is_the_given_one_or_else_the_clips():
    base = torch.zeros((3, WIDTH), dtype=torch.bool)
    base[0, [1, 3]] = True
    base[1, [0, 10, 15]] = True
    base[2, [7]] = True
    given = MaskRequests(np.array([A, B, C]), base=base, base_row=np.array([1, 1, 0]))
    # B uses only its 11 bins: row 1 without bin 15
    assert answers(oracle(), given) == [clip_of(A, 0, 10, 15), clip_of(B, 0, 10), clip_of(C, 1, 3)]
    own = MaskRequests(np.array([C, A, B]), base=base)  # rows 2, 0, 1
    assert answers(oracle(), own) == [clip_of(C, 7), clip_of(A, 1, 3), clip_of(B, 0, 10)]


def test_kept_intervals_minus_dropped_ones():
    req = MaskRequests(
        np.array([A, B, C, A]),
        keep=keep([(2, 6), (8, 9)], [(0, 11)], [], [(0, 16)]),
        drop=keep([(4, 5)], [(5, 11)], [(0, 3)], []),
    )
    # A: 2-5 and 8, less 4. B: all 11 less 5-10. C: nothing kept. A: everything.
    assert answers(oracle(), req) == [
        clip_of(A, 2, 3, 5, 8),
        clip_of(B, 0, 1, 2, 3, 4),
        clip_of(C),
        clip_of(A, *range(16)),
    ]


def test_rank_base_and_keep_are_united_then_drop_removes_then_invert_complements():
    base = torch.zeros((1, WIDTH), dtype=torch.bool)
    base[0, [3, 12]] = True
    req = MaskRequests(
        np.array([A, A, C, B]),
        rank=RANK,
        sizes=np.array([2, 2, 0, 4]),
        base=base,
        base_row=np.array([0, 0, 0, 0]),
        keep=keep([(6, 8)], [(6, 8)], [], [(0, 1)]),
        drop=keep([(1, 2), (12, 13)], [(1, 2), (12, 13)], [], [(3, 11)]),
        invert=np.array([False, True, True, True]),
    )
    # A: rank {0, 1} | base {3, 12} | keep {6, 7} = {0, 1, 3, 6, 7, 12}, less {1, 12};
    # the second request is its complement. C: rank nothing, base {3, 12}, complemented.
    # B: ranks 15 - v < 4 are past its end, base {3} (12 is past it), keep {0}, drop
    # 3-10 leaves {0}; complemented: 1-10.
    assert answers(oracle(), req) == [
        clip_of(A, 0, 3, 6, 7),
        clip_of(A, 1, 2, 4, 5, *range(8, 16)),
        clip_of(C, *(set(range(16)) - {3, 12})),
        clip_of(B, *range(1, 11)),
    ]


def test_invert_alone_complements_the_empty_mask():
    req = MaskRequests(np.array([B, A]), invert=np.array([True, False]))
    assert answers(oracle(), req) == [clip_of(B, *range(11)), clip_of(A)]


# --- batching -----------------------------------------------------------------------------


def singles(*pairs: tuple[int, int]) -> MaskRequests:
    """Request k: clip pairs[k][0] with its one bin pairs[k][1]."""
    clips = np.array([c for c, _ in pairs])
    return MaskRequests(clips, keep=keep(*[[(b, b + 1)] for _, b in pairs]))


INTERLEAVED = [(B, 0), (A, 13), (C, 1), (B, 10), (A, 2), (C, 15), (A, 3)]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_answers_come_back_in_request_order_whatever_the_batch_size(batch_size):
    o = oracle(batch_size)
    got = answers(o, singles(*INTERLEAVED))
    assert got == [clip_of(c, b) for c, b in INTERLEAVED]


@pytest.mark.parametrize(
    ("batch_size", "calls"),
    [
        # B's 2 requests (the 20-sample group comes first), then the 5 of A and C
        (2, [(20, 2), (30, 2), (30, 2), (30, 1)]),
        (3, [(20, 2), (30, 3), (30, 2)]),
        (5, [(20, 2), (30, 5)]),
        (64, [(20, 2), (30, 5)]),
    ],
)
def test_a_length_groups_requests_go_to_the_model_in_order_batch_size_at_a_time(batch_size, calls):
    o = oracle(batch_size)
    o.run(singles(*INTERLEAVED), "test")
    assert o.classifier.batches == calls and o.batches == len(calls)
    group_order = [(B, 0), (B, 10), (A, 13), (C, 1), (A, 2), (C, 15), (A, 3)]
    assert o.classifier.asked == [
        (length, amp, frozenset(bins))
        for length, amp, bins in (clip_of(c, b) for c, b in group_order)
    ]
    assert set(o.classifier.dtypes) == {torch.float32}


def test_a_longer_interleaving_keeps_request_order_within_each_length():
    # 14 requests, the 20-sample clip at positions 1, 4, 7, 11: its four go first, then
    # the ten 30-sample ones, each group in request order (a stable sort by length)
    pairs = [(A, 0), (B, 0), (C, 1), (A, 2), (B, 1), (C, 3), (A, 4), (B, 2), (C, 5), (A, 6),
             (C, 7), (B, 3), (A, 8), (C, 9)]  # fmt: skip
    o = oracle()
    assert answers(o, singles(*pairs)) == [clip_of(c, b) for c, b in pairs]
    in_order = [p for p in pairs if p[0] == B] + [p for p in pairs if p[0] != B]
    assert [(length, amp, set(bins)) for length, amp, bins in o.classifier.asked] == [
        clip_of(c, b) for c, b in in_order
    ]


def test_the_default_batch_is_64_mutants():
    o = Oracle(Decoder(), [impulse(30, 1)], FFTSpace)
    spans = [(a, b) for a in range(16) for b in range(a + 1, 17)][:65]  # 65 distinct masks
    o.run(MaskRequests(np.zeros(65, dtype=np.int64), keep=keep(*[[s] for s in spans])), "test")
    assert o.classifier.batches == [(30, 64), (30, 1)]


def test_request_sets_of_one_call_share_batches_and_keep_their_own_answers():
    o = oracle(5)
    first = singles((A, 0), (C, 1), (B, 2))
    second = singles((C, 3))
    third = singles((A, 5), (B, 6), (C, 7), (A, 8))
    out = o.run_many([(first, "one"), (second, "two"), (third, "three")])
    assert [[seen(r) for r in x] for x in out] == [
        [clip_of(A, 0), clip_of(C, 1), clip_of(B, 2)],
        [clip_of(C, 3)],
        [clip_of(A, 5), clip_of(B, 6), clip_of(C, 7), clip_of(A, 8)],
    ]
    # 20 samples: B,2 (set one) and B,6 (set three) in one call. 30 samples, 6 mutants,
    # 5 a call: A,0 C,1 (set one) C,3 (set two) A,5 C,7 (set three), then A,8.
    assert o.classifier.batches == [(20, 2), (30, 5), (30, 1)]
    assert [sorted(b)[0] for _, _, b in o.classifier.asked] == [2, 6, 0, 1, 3, 5, 7, 8]
    assert (o.batches, o.rounds) == (3, 1)
    assert {k: v.tolist() for k, v in o.by_phase.items()} == {
        "one": [1, 1, 1],
        "two": [0, 0, 1],
        "three": [2, 1, 1],
    }
    assert o.queries.tolist() == [3, 2, 3]


def test_two_sets_in_one_batch_of_their_own():
    o = oracle(4)
    out = o.run_many([(singles((A, 0), (C, 1)), "x"), (singles((C, 2), (A, 3)), "x")])
    assert [[seen(r) for r in x] for x in out] == [
        [clip_of(A, 0), clip_of(C, 1)],
        [clip_of(C, 2), clip_of(A, 3)],
    ]
    assert o.classifier.batches == [(30, 4)]
    assert o.by_phase["x"].tolist() == [2, 0, 2]


def test_no_request_sets_no_model_call():
    o = oracle()
    assert o.run_many([]) == []
    assert o.rounds == 1 and o.classifier.batches == []


def test_kept_intervals_in_later_chunks_belong_to_their_own_requests():
    # batch_size 2: the masks of requests 2-5 are built in chunks that start past row 0
    o = oracle(2)
    req = MaskRequests(
        np.array([A, A, A, A, A, C]),
        keep=keep([(0, 1)], [(1, 3)], [(3, 4), (9, 10)], [], [(14, 16)], [(5, 6)]),
        drop=keep([], [], [(9, 10)], [], [(15, 16)], []),
    )
    assert answers(o, req) == [
        clip_of(A, 0),
        clip_of(A, 1, 2),
        clip_of(A, 3),
        clip_of(A),
        clip_of(A, 14),
        clip_of(C, 5),
    ]


# --- dedup and counting -------------------------------------------------------------------


def call_of(row) -> int:
    return int(np.asarray(row)[CALL])


def test_a_pair_asked_twice_in_one_call_goes_to_the_model_once():
    o = oracle(2)
    req = MaskRequests(
        np.array([B, A, A, C, A, B, C]),
        rank=RANK,
        sizes=np.array([0, 3, 0, 0, 0, 0, 0]),
        keep=keep([(0, 2)], [], [(0, 3)], [(0, 3)], [(3, 16)], [(0, 1), (1, 2)], [(1, 3)]),
        invert=np.array([False, False, False, False, True, False, False]),
    )
    # A's bins 0-2 by rank, by interval and as the complement of 3-15: one mask, asked
    # three times; C's 0-2 is another clip's, C's 1-2 another mask; B's 0-1 twice.
    out = o.run(req, "test")
    assert [seen(r) for r in out] == [
        clip_of(B, 0, 1),
        clip_of(A, 0, 1, 2),
        clip_of(A, 0, 1, 2),
        clip_of(C, 0, 1, 2),
        clip_of(A, 0, 1, 2),
        clip_of(B, 0, 1),
        clip_of(C, 1, 2),
    ]
    assert len(o.classifier.asked) == 4 and o.reused == 3
    assert call_of(out[1]) == call_of(out[2]) == call_of(out[4])
    assert call_of(out[0]) == call_of(out[5])
    assert o.queries.tolist() == [1, 1, 2] and o.by_phase["test"].tolist() == [1, 1, 2]


def test_a_pair_asked_before_is_answered_without_the_model_and_fresh_asks_anew():
    o = oracle()
    first = o.run(singles((A, 5), (C, 5)), "first")
    assert o.classifier.batches == [(30, 2)]
    again = o.run_many([(singles((C, 5)), "again"), (singles((C, 5), (A, 6)), "again")])
    assert [call_of(r) for r in again[0]] == [0]  # from the first call
    assert [call_of(r) for r in again[1]] == [0, 1]  # A,6 is new: call 1
    assert torch.equal(again[0][0], first[1])
    assert o.reused == 2 and o.rounds == 2
    assert o.by_phase["again"].tolist() == [1, 0, 0] and o.queries.tolist() == [2, 0, 1]
    # fresh: both asked anew (call 2), counted, and the stored answers stay call 0's
    fresh = o.run(singles((A, 5), (A, 5)), "fresh", fresh=True)
    assert [call_of(r) for r in fresh] == [2, 2] and o.classifier.batches[-1] == (30, 2)
    assert o.by_phase["fresh"].tolist() == [2, 0, 0] and o.reused == 2
    fresh_many = o.run_many([(singles((C, 5)), "fresh")], fresh=True)
    assert [call_of(r) for r in fresh_many[0]] == [3]
    later = o.run(singles((A, 5), (C, 5)), "later")
    assert [call_of(r) for r in later] == [0, 0] and len(o.classifier.batches) == 4
    assert o.by_phase["later"].tolist() == [0, 0, 0] and o.by_phase["later"].dtype == np.int64
    assert o.queries.tolist() == [4, 0, 2] and o.rounds == 5 and o.reused == 4


def test_the_originals_answer_the_full_masks():
    o = oracle(2)
    orig = o.originals()
    assert [seen(r) for r in orig] == [
        clip_of(A, *range(16)),
        clip_of(B, *range(11)),
        clip_of(C, *range(16)),
    ]
    assert o.by_phase["original"].tolist() == [1, 1, 1] and o.batches == 0
    # the full masks, however described, are not asked again
    req = MaskRequests(
        np.array([A, B, C, B]),
        keep=keep([(0, 16)], [(0, 11)], [(0, 8), (8, 16)], []),
        invert=np.array([False, False, False, True]),
    )
    out = o.run(req, "full")
    assert torch.equal(out, orig[[A, B, C, B]])
    assert len(o.classifier.asked) == 3 and o.reused == 4
    assert o.queries.tolist() == [1, 1, 1] and o.by_phase["full"].tolist() == [0, 0, 0]


def test_the_same_mask_of_another_length_is_another_pair():
    o = oracle()
    o.run(singles((A, 0), (B, 0)), "test")
    assert o.classifier.batches == [(20, 1), (30, 1)] and o.reused == 0


# --- fingerprints ---------------------------------------------------------------------------


def test_every_mask_of_a_16_bin_clip_has_its_own_exact_key():
    o = Oracle(Decoder(), [impulse(30, 1)], FFTSpace, batch_size=4096)
    codes = np.arange(2**16)
    bits = (codes[:, None] >> np.arange(16)) & 1  # mask k holds the bins of k's set bits
    req = MaskRequests(np.zeros(2**16, dtype=np.int64), base=torch.as_tensor(bits.astype(bool)),
                       base_row=codes)  # fmt: skip
    keys = o._keys(req)
    assert len(set(keys)) == 2**16 and {k[0] for k in keys} == {0}
    # one bin's key is its two weights: integers below 2**31; every key is their sum
    weights = np.array([keys[1 << v][1:] for v in range(16)])
    assert (weights == np.floor(weights)).all() and (weights >= 0).all() and (weights < 2**31).all()
    sums = bits @ weights.astype(np.int64)
    assert (np.array([k[1:] for k in keys]) == sums).all()
    assert keys[0][1:] == (0.0, 0.0)


def test_keys_do_not_depend_on_the_chunk_a_mask_is_built_in():
    req = MaskRequests(np.array([A, C, B, A, C]), keep=keep(*[[(k, k + 5)] for k in range(5)]))
    assert oracle(1)._keys(req) == oracle(64)._keys(req)


def test_the_oracle_leaves_torchs_global_random_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    o = oracle()
    o.run(singles((A, 1), (B, 1)), "test")
    assert torch.equal(torch.rand(4), expected)
