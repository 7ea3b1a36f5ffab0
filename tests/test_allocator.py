"""The allocator model against answers derived by hand from c10/cuda/CUDACachingAllocator.cpp."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.measuring.allocator import (
    AllocatorOutOfMemory,
    CachingAllocatorModel,
    allocation_size,
    round_size,
    simulate,
)

KiB, MiB = 1 << 10, 1 << 20


def test_round_size():
    assert [round_size(n) for n in (1, 511, 512, 513, 1000)] == [512, 512, 512, 1024, 1024]


def test_allocation_size_by_request():
    assert allocation_size(512) == 2 * MiB  # small pool segment
    assert allocation_size(MiB) == 2 * MiB  # 1 MiB is still small
    assert allocation_size(MiB + 512) == 20 * MiB  # large, below 10 MiB: kLargeBuffer
    assert allocation_size(10 * MiB) == 10 * MiB  # from 10 MiB: rounded up to 2 MiB
    assert allocation_size(10 * MiB + 512) == 12 * MiB


def test_one_byte_counts_512_in_a_2_mib_segment():
    trace = simulate([(1, "a", 1)])
    assert (trace.allocated[-1], trace.requested[-1], trace.reserved[-1]) == (512, 1, 2 * MiB)


def test_small_pool_splits_one_segment():
    trace = simulate([(1, "a", 1000), (1, "b", 3000), (-1, "a", 1000), (1, "c", 600)])
    # 1024 + 3072 carved from one 2 MiB segment; c (1024 rounded) reuses a's freed 1024-byte block exactly.
    assert trace.allocated == [0, 1024, 4096, 3072, 4096]
    assert trace.reserved[-1] == 2 * MiB


def test_small_request_fills_freed_block_without_new_segment():
    model = CachingAllocatorModel()
    blocks = [model.malloc(KiB) for _ in range(2048)]  # exactly one 2 MiB segment
    assert model.reserved == 2 * MiB
    model.free(blocks[5])
    model.malloc(700)  # 1024 after rounding: fits the hole; nothing to split
    assert (model.allocated, model.reserved) == (2 * MiB, 2 * MiB)


def test_reused_2_mib_block_counts_whole_for_1_5_mib():
    # A (2 MiB) and B (18 MiB) fill one 20 MiB segment; A freed; 1.5 MiB takes A: 0.5 MiB left ≤ 1 MiB: no split.
    events = [(1, "A", 2 * MiB), (1, "B", 18 * MiB), (-1, "A", 2 * MiB), (1, "C", 3 * MiB // 2)]
    trace = simulate(events)
    assert trace.allocated == [0, 2 * MiB, 20 * MiB, 18 * MiB, 20 * MiB]
    assert trace.requested[-1] == 18 * MiB + 3 * MiB // 2
    assert trace.reserved[-1] == 20 * MiB


def test_same_with_expandable_segments_splits_at_512():
    events = [(1, "A", 2 * MiB), (1, "B", 18 * MiB), (-1, "A", 2 * MiB), (1, "C", 3 * MiB // 2)]
    trace = simulate(events, expandable_segments=True)
    assert trace.allocated[-1] == 18 * MiB + 3 * MiB // 2
    assert trace.reserved[-1] == 20 * MiB


def test_large_requests_round_to_2_mib_segments():
    # 10 MiB + 1 -> rounded 10 MiB + 512 in a 12 MiB segment; the 2 MiB - 512 left exceeds 1 MiB: split.
    split = simulate([(1, "a", 10 * MiB + 1)])
    assert (split.allocated[-1], split.reserved[-1]) == (10 * MiB + 512, 12 * MiB)
    # 11 MiB in a 12 MiB segment: 1 MiB left is not more than 1 MiB: the whole segment is counted.
    whole = simulate([(1, "a", 11 * MiB)])
    assert (whole.allocated[-1], whole.reserved[-1]) == (12 * MiB, 12 * MiB)


def test_freed_neighbours_merge():
    # A 4 + B 4 + C 12 fill one 20 MiB segment; A and B freed merge into 8 MiB; 7.5 MiB takes it whole.
    events = [(1, "A", 4 * MiB), (1, "B", 4 * MiB), (1, "C", 12 * MiB), (-1, "A", 0), (-1, "B", 0),
              (1, "D", 15 * MiB // 2)]
    trace = simulate(events)
    assert trace.allocated[-1] == 20 * MiB
    assert trace.reserved[-1] == 20 * MiB  # no second segment: the merged block was found


def test_best_fit_takes_the_smallest_block():
    # A 4, X 2, B 8, Y 6 fill 20 MiB; A and B freed (not adjacent). 3.5 MiB -> A (whole), 7.5 MiB -> B (whole).
    events = [(1, "A", 4 * MiB), (1, "X", 2 * MiB), (1, "B", 8 * MiB), (1, "Y", 6 * MiB), (-1, "A", 0),
              (-1, "B", 0), (1, "P", 7 * MiB // 2), (1, "Q", 15 * MiB // 2)]
    trace = simulate(events)
    assert trace.allocated[-2:] == [12 * MiB, 20 * MiB]
    assert trace.reserved[-1] == 20 * MiB


def test_expandable_segment_grows_from_its_free_end():
    # 30 MiB maps two 20 MiB pages (10 MiB free at the end); 15 MiB extends that free end by one page.
    trace = simulate([(1, "a", 30 * MiB), (1, "b", 15 * MiB)], expandable_segments=True)
    assert trace.allocated == [0, 30 * MiB, 45 * MiB]
    assert trace.reserved == [0, 40 * MiB, 60 * MiB]


def test_expandable_best_fit_prefers_interior_block():
    # a 6, b 10, c 4 fill the first 20 MiB page; a and c freed. c touches the unmapped tail, so its "expandable
    # size" is huge: 3 MiB goes to a (6 MiB) although c (4 MiB) is smaller. Then 5 MiB fits neither a's 3 MiB nor
    # c's 4 MiB, and c grows by one page.
    events = [(1, "a", 6 * MiB), (1, "b", 10 * MiB), (1, "c", 4 * MiB), (-1, "a", 0), (-1, "c", 0),
              (1, "d", 3 * MiB), (1, "e", 5 * MiB)]
    trace = simulate(events, expandable_segments=True)
    assert trace.reserved[-2:] == [20 * MiB, 40 * MiB]
    assert trace.allocated[-1] == 18 * MiB


def test_reserved_limit_releases_free_segments_then_fails():
    model = CachingAllocatorModel(reserved_limit=30 * MiB)
    first = model.malloc(12 * MiB)
    model.malloc(12 * MiB)
    model.free(first)
    model.malloc(14 * MiB)  # 24 + 14 > 30: the free 12 MiB segment is released, then 12 + 14 fits
    assert model.reserved == 26 * MiB
    with pytest.raises(AllocatorOutOfMemory):
        model.malloc(8 * MiB)  # needs a 20 MiB segment


def test_max_split_size_keeps_oversize_blocks_whole():
    model = CachingAllocatorModel(max_split_size=8 * MiB)
    big = model.malloc(40 * MiB)
    model.free(big)
    model.malloc(4 * MiB)  # below max_split_size: may not take the oversize 40 MiB block
    assert model.reserved == 60 * MiB
    model.malloc(30 * MiB)  # oversize request: 40 < 30 + 20 MiB, so it takes the 40 MiB block unsplit
    assert model.allocated == 4 * MiB + 40 * MiB


def test_zero_byte_storages_take_no_block_but_a_state():
    trace = simulate([(1, "z", 0), (1, "a", 512), (-1, "z", 0)])
    assert trace.allocated == [0, 0, 512, 512]


def test_event_errors():
    with pytest.raises(ValueError, match="never allocated"):
        simulate([(-1, "a", 1)])
    with pytest.raises(ValueError, match="still live"):
        simulate([(1, "a", 1), (1, "a", 1)])
    with pytest.raises(ValueError, match="sign"):
        simulate([(0, "a", 1)])


def test_phase_figures_include_the_starting_state():
    events = [(1, "p", 4096), (1, "x", 8192), (-1, "x", 0), (1, "y", 512), (-1, "y", 0)]
    trace = simulate(events)
    phases = trace.phases({"forward": 1, "backward": 3, "end": 5})
    assert phases["forward"] == {"peak_bytes": 12288, "start_bytes": 4096, "end_bytes": 4096,
                                 "requested_peak_bytes": 12288, "reserved_peak_bytes": 2 * MiB}
    assert phases["backward"]["peak_bytes"] == 4608 and phases["backward"]["start_bytes"] == 4096
    assert trace.peak() == 12288
    with pytest.raises(ValueError):
        trace.peak(3, 99)


SIZES = st.one_of(st.integers(0, 4 * KiB), st.integers(0, 2 * MiB), st.integers(MiB, 30 * MiB))


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), SIZES, st.integers(0, 1 << 30)), max_size=60),
       expandable=st.booleans())
def test_allocated_between_requested_and_one_mib_per_block_over(ops, expandable):
    model = CachingAllocatorModel(expandable_segments=expandable)
    live = []
    for allocate, nbytes, pick in ops:
        if allocate or not live:
            live.append((model.malloc(nbytes), nbytes) if nbytes else (None, 0))
        else:
            block, _ = live.pop(pick % len(live))
            if block is not None:
                model.free(block)
        requested = sum(n for _, n in live)
        assert model.requested == requested
        assert requested <= model.allocated <= requested + (MiB + 511) * len(live)
        assert model.allocated <= model.reserved
        model._check_invariants(block for block, _ in live if block is not None)
