"""A pure-Python model of what PyTorch's CUDA caching allocator counts in `allocated_bytes`.

A meta-simulated step records the exact bytes of every storage; `torch.cuda.max_memory_allocated()` counts whole
allocator blocks. Replaying the simulated storage events through this model gives the figure the GPU would report,
so the two can be compared at the same granularity. No torch import.

The rules, from c10/cuda/CUDACachingAllocator.cpp (DeviceCachingAllocator::malloc / free):
  1. round_size: a request of n bytes becomes max(512, ceil(n / 512)·512) (kMinBlockSize = 512; the optional
     roundup_power2_divisions setting is not modelled). Zero-byte storages get no block at all.
  2. get_pool: rounded size ≤ 1 MiB (kSmallSize) -> small pool, else large pool.
  3. get_free_block: best fit, the cached free block of the pool with the smallest (size, address) ≥ the rounded
     size. With max_split_size set, a request below it never takes an "oversize" block (≥ max_split_size), and a
     request at or above it takes an oversize block only if that block is < size + 20 MiB.
  4. Otherwise a new segment of get_allocation_size(size): 2 MiB (kSmallBuffer) for the small pool, 20 MiB
     (kLargeBuffer) for sizes below 10 MiB (kMinLargeAlloc), else size rounded up to 2 MiB (kRoundLarge).
  5. should_split: the found block is split, the remainder returned to the pool, if
     small pool (or expandable segments): remainder ≥ 512;  large pool: size < max_split_size and remainder > 1 MiB.
     So one large tensor is over-counted by up to 1 MiB.
  6. allocated_bytes grows by the block's size (not the request); requested_bytes by the request.
  7. free: the block is merged with a free neighbour on either side within its segment, then cached.
  8. With a reserved limit (set_per_process_memory_fraction), a new segment that would exceed it first makes the
     allocator release every cached segment that is entirely free (release_cached_blocks), then retry; a second
     failure is an out-of-memory error.
  9. expandable_segments:True: one growing segment per pool whose address space is mapped in pages of 2 MiB
     (small pool) or 20 MiB (large pool). When no cached block fits, pages are mapped at the end of the segment,
     merging with a free block that ends there. Best fit considers a block touching the unmapped tail to be as
     large as it could grow, so a later, interior block of smaller "expandable size" is preferred.

Simplifications, stated plainly:
  - one device, one stream; no recordStream, no cross-stream events, no CUDA graphs or private pools;
  - no empty_cache and no garbage_collection_threshold; no roundup_power2_divisions;
  - new segments get increasing addresses (real cudaMalloc addresses are not ordered), which only decides ties
    between free blocks of equal size;
  - the reserved limit is modelled for ordinary segments only (not with expandable segments), and with
    max_split_size set the partial release of oversize blocks (release_available_cached_blocks) is not modelled;
  - memory outside the allocator (CUDA context, cuBLAS workspaces made before the trace) is not seen.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable, Mapping

MIN_BLOCK_SIZE = 512  # kMinBlockSize
SMALL_SIZE = 1 << 20  # kSmallSize: largest "small" request
SMALL_BUFFER = 2 << 20  # kSmallBuffer: small-pool segment
MIN_LARGE_ALLOC = 10 << 20  # kMinLargeAlloc: below this a large request gets a kLargeBuffer segment
LARGE_BUFFER = 20 << 20  # kLargeBuffer
ROUND_LARGE = 2 << 20  # kRoundLarge
EXPANDABLE_ADDRESS_PAGES = 1 << 24  # address space of one expandable segment, in pages (effectively unbounded)


class AllocatorOutOfMemory(MemoryError):
    """The modelled allocator could not reserve a new segment under its reserved limit."""


def round_size(nbytes: int) -> int:
    """Rule 1: max(512, 512·ceil(n/512))."""
    if nbytes < MIN_BLOCK_SIZE:
        return MIN_BLOCK_SIZE
    return MIN_BLOCK_SIZE * -(-nbytes // MIN_BLOCK_SIZE)


def is_small(size: int) -> bool:
    """Rule 2, on the rounded size."""
    return size <= SMALL_SIZE


def allocation_size(size: int) -> int:
    """Rule 4: the segment a cudaMalloc would reserve for a rounded size that no cached block fits."""
    if is_small(size):
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return ROUND_LARGE * -(-size // ROUND_LARGE)


class _Block:
    __slots__ = ("address", "size", "requested", "allocated", "mapped", "prev", "next", "small")

    def __init__(self, address: int, size: int, small: bool, mapped: bool = True) -> None:
        self.address, self.size, self.small, self.mapped = address, size, small, mapped
        self.requested = 0
        self.allocated = False
        self.prev: _Block | None = None
        self.next: _Block | None = None

    def key(self) -> tuple[int, int]:
        return (self.size, self.address)


class _Pool:
    """The cached free (mapped) blocks of one pool, ordered by (size, address) as BlockComparatorSize does."""

    def __init__(self, small: bool) -> None:
        self.small = small
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[tuple[int, int], _Block] = {}
        self.tail: _Block | None = None  # expandable mode: the unmapped rest of the segment

    def insert(self, block: _Block) -> None:
        key = block.key()
        bisect.insort(self.keys, key)
        self.blocks[key] = block

    def remove(self, block: _Block) -> None:
        key = block.key()
        del self.keys[bisect.bisect_left(self.keys, key)]
        del self.blocks[key]

    def first_at_least(self, size: int) -> int:
        return bisect.bisect_left(self.keys, (size, -1))


class CachingAllocatorModel:
    """The allocator's block bookkeeping; `malloc(n)` returns a handle for `free(handle)`.

    allocated / requested / reserved: the current allocated_bytes, requested_bytes and reserved_bytes.
    """

    def __init__(self, expandable_segments: bool = False, max_split_size: int | None = None,
                 reserved_limit: int | None = None) -> None:
        if reserved_limit is not None and expandable_segments:
            raise ValueError("a reserved limit is not modelled together with expandable segments")
        if max_split_size is not None and max_split_size <= SMALL_SIZE:
            raise ValueError(f"max_split_size must exceed 1 MiB, got {max_split_size}")
        self.expandable_segments = expandable_segments
        self.max_split_size = max_split_size
        self.reserved_limit = reserved_limit
        self.pools = {True: _Pool(small=True), False: _Pool(small=False)}
        self.allocated = self.requested = self.reserved = 0
        self._next_address = 0

    # -- malloc ---------------------------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> _Block:
        size = round_size(nbytes)
        pool = self.pools[is_small(size)]
        block = self._best_fit(pool, size)
        if block is None:
            block = self._grow_expandable(pool, size) if self.expandable_segments else self._new_segment(pool, size)
        if self._should_split(block, size):
            remainder = _Block(block.address + size, block.size - size, block.small)
            remainder.prev, remainder.next = block, block.next
            if block.next is not None:
                block.next.prev = remainder
            block.next, block.size = remainder, size
            pool.insert(remainder)
        block.allocated, block.requested = True, nbytes
        self.allocated += block.size
        self.requested += nbytes
        return block

    def _oversize(self, size: int) -> bool:
        return self.max_split_size is not None and size >= self.max_split_size

    def _best_fit(self, pool: _Pool, size: int) -> _Block | None:
        """Rule 3 (and rule 9's expandable-size preference); the block leaves the pool."""
        index = pool.first_at_least(size)
        if index == len(pool.keys):
            return None
        if self.expandable_segments:
            while index + 1 < len(pool.keys) and (self._expandable_size(pool.blocks[pool.keys[index + 1]])
                                                  < self._expandable_size(pool.blocks[pool.keys[index]])):
                index += 1
        block = pool.blocks[pool.keys[index]]
        if not self._oversize(size) and self._oversize(block.size):
            return None
        if self._oversize(size) and block.size >= size + LARGE_BUFFER:
            return None
        pool.remove(block)
        return block

    @staticmethod
    def _expandable_size(block: _Block) -> int:
        following = block.next
        return block.size + (following.size if following is not None and not following.mapped else 0)

    def _should_split(self, block: _Block, size: int) -> bool:
        """Rule 5."""
        remaining = block.size - size
        if block.small or self.expandable_segments:
            return remaining >= MIN_BLOCK_SIZE
        return not self._oversize(size) and remaining > SMALL_SIZE

    def _new_segment(self, pool: _Pool, size: int) -> _Block:
        """Rules 4 and 8: a fresh cudaMalloc'd segment, after releasing free segments if the limit demands."""
        segment = allocation_size(size)
        if self.reserved_limit is not None and self.reserved + segment > self.reserved_limit:
            self._release_cached_segments()
            if self.reserved + segment > self.reserved_limit:
                raise AllocatorOutOfMemory(
                    f"cannot reserve a {segment}-byte segment: {self.reserved} of {self.reserved_limit} bytes "
                    f"reserved, {self.allocated} allocated")
        block = _Block(self._next_address, segment, pool.small)
        self._next_address += segment
        self.reserved += segment
        return block

    def _release_cached_segments(self) -> None:
        for pool in self.pools.values():
            for block in [b for b in pool.blocks.values() if b.prev is None and b.next is None]:
                pool.remove(block)
                self.reserved -= block.size

    def _grow_expandable(self, pool: _Pool, size: int) -> _Block:
        """Rule 9: map pages at the end of the pool's segment, joined to a free block that ends there."""
        page = SMALL_BUFFER if pool.small else LARGE_BUFFER
        if pool.tail is None:
            pool.tail = _Block(self._next_address, page * EXPANDABLE_ADDRESS_PAGES, pool.small, mapped=False)
            self._next_address += pool.tail.size
        tail = pool.tail
        before = tail.prev
        start = before if before is not None and not before.allocated else None
        needed = size - (start.size if start is not None else 0)
        mapped = page * -(-needed // page)
        if mapped >= tail.size:
            raise AllocatorOutOfMemory("expandable segment address space exhausted")
        if start is None:
            start = _Block(tail.address, 0, pool.small)
            start.prev, start.next = before, tail
            if before is not None:
                before.next = start
            tail.prev = start
        else:
            pool.remove(start)
        start.size += mapped
        tail.address += mapped
        tail.size -= mapped
        self.reserved += mapped
        return start

    # -- free -----------------------------------------------------------------------------------------------------
    def free(self, block: _Block) -> None:
        """Rule 7."""
        if not block.allocated:
            raise ValueError("block freed twice")
        pool = self.pools[block.small]
        block.allocated = False
        self.allocated -= block.size
        self.requested -= block.requested
        block.requested = 0
        for neighbour in (block.prev, block.next):
            if neighbour is not None and not neighbour.allocated and neighbour.mapped:
                pool.remove(neighbour)
                self._absorb(block, neighbour)
        pool.insert(block)

    @staticmethod
    def _absorb(block: _Block, neighbour: _Block) -> None:
        if neighbour is block.prev:
            block.address = neighbour.address
            block.prev = neighbour.prev
            if block.prev is not None:
                block.prev.next = block
        else:
            block.next = neighbour.next
            if block.next is not None:
                block.next.prev = block
        block.size += neighbour.size

    # -- checks used by the tests ---------------------------------------------------------------------------------
    def _check_invariants(self, live: Iterable[_Block] = ()) -> None:
        """Blocks of each segment tile it, sums agree with the counters, no two free neighbours are left unmerged.

        `live`: the handles malloc returned and free has not taken, so that fully allocated segments are seen too.
        """
        seen: set[int] = set()
        allocated = requested = free_mapped = 0
        heads = list(live) + [b for pool in self.pools.values() for b in pool.blocks.values()]
        heads += [pool.tail for pool in self.pools.values() if pool.tail is not None]
        for start in heads:
            while start.prev is not None:
                start = start.prev
            if id(start) in seen:
                continue
            block = start
            while block is not None:
                seen.add(id(block))
                if block.next is not None:
                    assert block.next.address == block.address + block.size and block.next.prev is block
                    assert block.allocated or block.next.allocated or block.mapped != block.next.mapped
                if block.allocated:
                    allocated += block.size
                    requested += block.requested
                elif block.mapped:
                    free_mapped += block.size
                    assert self.pools[block.small].blocks.get(block.key()) is block
                block = block.next
        assert free_mapped == sum(b.size for pool in self.pools.values() for b in pool.blocks.values())
        assert (allocated, requested) == (self.allocated, self.requested)
        assert allocated + free_mapped == self.reserved


@dataclass
class AllocatorTrace:
    """Counters after each event: index 0 is before the first event, index k after the k-th.

    A phase that starts at event index a and ends at event index b spans the states a..b, which matches what
    reset_peak_memory_stats() at a and a read of the peak at b would report (the reset sets the peak to the
    current value, so the state at a is included).
    """

    allocated: list[int] = field(default_factory=lambda: [0])
    requested: list[int] = field(default_factory=lambda: [0])
    reserved: list[int] = field(default_factory=lambda: [0])

    def peak(self, start: int = 0, stop: int | None = None, counter: str = "allocated") -> int:
        """max of the counter over the states start..stop (inclusive; stop defaults to the last state)."""
        values = getattr(self, counter)
        stop = len(values) - 1 if stop is None else stop
        if not 0 <= start <= stop < len(values):
            raise ValueError(f"event range {start}..{stop} outside 0..{len(values) - 1}")
        return max(values[start:stop + 1])

    def window(self, start: int, stop: int) -> dict[str, int]:
        """Figures of the events start..stop (a phase: stop is where the next one begins)."""
        return {"peak_bytes": self.peak(start, stop), "start_bytes": self.allocated[start],
                "end_bytes": self.allocated[stop], "requested_peak_bytes": self.peak(start, stop, "requested"),
                "reserved_peak_bytes": self.peak(start, stop, "reserved")}

    def phases(self, boundaries: Mapping[str, int]) -> dict[str, dict[str, int]]:
        """Figures by phase from the event index at which each phase begins, the last name ("end") closing.

        {"forward": 0, "backward": 40, "optimizer": 90, "end": 120} ->
        {"forward": {"peak_bytes", "start_bytes", "end_bytes", "requested_peak_bytes", "reserved_peak_bytes"}, ...}
        """
        ordered = sorted(boundaries.items(), key=lambda item: item[1])
        return {name: self.window(start, stop) for (name, start), (_, stop) in zip(ordered, ordered[1:])}


def simulate(events: Iterable[tuple[int, object, int]], *, expandable_segments: bool = False,
             max_split_size: int | None = None, reserved_limit: int | None = None) -> AllocatorTrace:
    """Replay (sign, storage_id, nbytes) events, sign +1 allocate / -1 free, through the allocator model.

    Storages that exist before the trace (parameters, say) must appear as allocations at its start. A zero-byte
    storage gets no block (the CUDA allocator returns a null pointer for it), but its events still take a state,
    so event indices stay aligned with the tracker's phase boundaries. Raises AllocatorOutOfMemory past a
    reserved limit.
    """
    model = CachingAllocatorModel(expandable_segments, max_split_size, reserved_limit)
    trace = AllocatorTrace()
    live: dict[object, _Block | None] = {}
    for index, (sign, storage_id, nbytes) in enumerate(events):
        if sign == 1:
            if storage_id in live:
                raise ValueError(f"event {index}: storage {storage_id!r} allocated while still live")
            live[storage_id] = model.malloc(nbytes) if nbytes > 0 else None
        elif sign == -1:
            if storage_id not in live:
                raise ValueError(f"event {index}: storage {storage_id!r} freed but never allocated; start the "
                                 "event list with the storages that already exist")
            block = live.pop(storage_id)
            if block is not None:
                model.free(block)
        else:
            raise ValueError(f"event {index}: sign must be +1 or -1, got {sign!r}")
        trace.allocated.append(model.allocated)
        trace.requested.append(model.requested)
        trace.reserved.append(model.reserved)
    return trace
