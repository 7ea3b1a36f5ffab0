"""The largest batch for which a monotone `fits(batch) -> bool` holds: pure, no torch (profiler.measuring.max_batch
supplies fits functions that run real steps)."""
from __future__ import annotations

from typing import Callable

DEFAULT_LIMIT = 1 << 16


def find_max_batch(fits: Callable[[int], bool], start: int = 1, limit: int = DEFAULT_LIMIT,
                   probes: list[tuple[int, bool]] | None = None) -> int:
    """The largest b in 1..limit with fits(b), assuming fits is monotone (true up to some b, false after); 0 if
    even 1 does not fit, `limit` if the limit itself fits.

    Exponential search from `start` (doubling, capped at `limit`) brackets the answer between a fitting lo and a
    failing hi; binary search then halves hi - lo until they are adjacent: about 2·log2(answer) calls of `fits`.
    Every call is appended to `probes` as (batch, fitted) when a list is given.
    """
    if not 1 <= start <= limit:
        raise ValueError(f"need 1 <= start <= limit, got start={start}, limit={limit}")

    def probe(batch: int) -> bool:
        fitted = bool(fits(batch))
        if probes is not None:
            probes.append((batch, fitted))
        return fitted

    lo, hi = 0, None  # lo fits (0 trivially), hi does not
    batch = start
    while hi is None:
        if not probe(batch):
            hi = batch
        elif batch == limit:
            return limit
        else:
            lo, batch = batch, min(2 * batch, limit)
    while hi - lo > 1:
        middle = (lo + hi) // 2
        lo, hi = (middle, hi) if probe(middle) else (lo, middle)
    return lo


def confirm_max_batch(fits: Callable[[int], bool], guess: int | None, limit: int = DEFAULT_LIMIT,
                      probes: list[tuple[int, bool]] | None = None) -> tuple[int, bool]:
    """(the largest b with fits(b), whether `guess` was it). A guess (a formula's answer) is confirmed by two
    calls: fits(guess) and not fits(guess + 1) prove it for a monotone `fits` (guess 0: not fits(1)). A refuted
    or missing guess falls back to find_max_batch, started from the guess."""
    probes = [] if probes is None else probes

    def probe(batch: int) -> bool:
        fitted = bool(fits(batch))
        probes.append((batch, fitted))
        return fitted

    if guess is not None and 0 <= guess < limit:
        if (guess == 0 or probe(guess)) and not probe(guess + 1):
            return guess, True
    start = min(max(guess or 1, 1), limit)
    return find_max_batch(fits, start, limit, probes), False


def linear_guess(fits: Callable[[int], bool], peaks: dict[int, int], budget_bytes: int,
                 probes: list[tuple[int, bool]] | None = None) -> int | None:
    """Where the line through the measured peaks at batch 1 and 2 crosses the budget: fits(1) and fits(2) measure
    them into `peaks` (a batch_fits function's dict). The guess for setups no formula set predicts (a sharded
    rank), to be confirmed by confirm_max_batch: a step's peak grows about linearly in the batch, its activations
    do. 0 where batch 1 does not fit; None where the peak does not grow."""
    for batch in (1, 2):
        fitted = bool(fits(batch))
        if probes is not None:
            probes.append((batch, fitted))
        if not fitted:
            return batch - 1
    slope = peaks[2] - peaks[1]
    return 1 + (budget_bytes - peaks[1]) // slope if slope > 0 else None
