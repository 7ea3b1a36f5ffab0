"""The true maximum batch size under a memory budget, found by search, and the formula sets' predictions.

find_max_batch is pure: any monotone `fits(batch) -> bool` will do. The fits functions here run a real step:
cuda_fits on a GPU under an emulated budget, meta_fits on the meta device through profiler.measure.
"""
from __future__ import annotations

from typing import Callable

import torch

from analytic.formula_sets import formula_sets, max_batch_size
from model.config import ModelConfig
from model.step import build, make_batch, train_step
from profiler.cuda import cuda_device, release_cached_memory

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


def _step_on_cuda(config: ModelConfig, batch_size: int, implementation: str, device) -> None:
    """Warm-up and measured step; the tensors live only in this frame."""
    model, optimizer = build(config, device, implementation)
    tokens, targets = make_batch(config, batch_size, device)
    for _ in range(2):
        train_step(model, optimizer, tokens, targets)


def fits_on_cuda(config: ModelConfig, batch_size: int, implementation: str, budget_bytes: int,
                 device="cuda") -> bool:
    """Whether a warm-up and a measured step run without running out of memory within `budget_bytes`.

    The budget is emulated with torch.cuda.set_per_process_memory_fraction(budget / total memory), restored
    afterwards. The fraction caps what the caching allocator may RESERVE (cudaMalloc'd segments), not what is
    allocated: fragmentation and cached free blocks count against the budget, as they would on a real card of
    that size. Memory outside the allocator (the CUDA context, a few hundred MB) is not part of the budget, while
    a real card loses it; compare budgets with that in mind.
    """
    device = cuda_device(device)
    total = torch.cuda.get_device_properties(device).total_memory
    if budget_bytes > total:
        raise ValueError(f"budget of {budget_bytes:,} bytes exceeds the {total:,} bytes of "
                         f"{torch.cuda.get_device_name(device)}: a budget can only be emulated on a larger card")
    previous = torch.cuda.get_per_process_memory_fraction(device)
    release_cached_memory(device)
    out_of_memory = False
    torch.cuda.set_per_process_memory_fraction(budget_bytes / total, device)
    try:
        _step_on_cuda(config, batch_size, implementation, device)
    except torch.OutOfMemoryError:
        out_of_memory = True  # recover below, outside the except block: its traceback holds the step's tensors
    finally:
        torch.cuda.set_per_process_memory_fraction(previous, device)
    release_cached_memory(device)  # gc.collect, empty_cache, reset_peak_memory_stats
    return not out_of_memory


def cuda_fits(config: ModelConfig, implementation: str, budget_bytes: int,
              device="cuda") -> Callable[[int], bool]:
    """fits(batch) for find_max_batch: a real warm-up + measured step on the GPU under the emulated budget."""
    return lambda batch_size: fits_on_cuda(config, batch_size, implementation, budget_bytes, device)


def meta_fits(config: ModelConfig, implementation: str, budget_bytes: int) -> Callable[[int], bool]:
    """fits(batch) = the meta-simulated step's measured peak is within the budget (profiler.measure, lazily)."""
    from profiler import measure

    def fits(batch_size: int) -> bool:
        measurement = measure.measure(config, batch_size, "meta", implementation, count_flops=False)
        return measurement.measured["peak_bytes"] <= budget_bytes

    return fits


def predicted_max_batches(config: ModelConfig, budget_bytes: int,
                          optimizer: str = "foreach") -> dict[str, int | None]:
    """Each formula set's predicted maximum batch (analytic.formula_sets.max_batch_size), None where it has none."""
    predictions: dict[str, int | None] = {}
    for name, module in formula_sets().items():
        try:
            predictions[name] = max_batch_size(module, config, budget_bytes, optimizer)
        except ValueError:  # outside the set's domain (the exact set: SDPA, context length 1)
            predictions[name] = None
    return predictions
