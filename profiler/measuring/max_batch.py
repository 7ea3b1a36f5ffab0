"""fits(batch) functions for profiler.measuring.search.find_max_batch that run a real step: on a GPU under an
emulated budget (fits_on_cuda), or on meta through the measured peak (profiler.measuring.measure).
"""
from __future__ import annotations

from typing import Callable

import torch

from analytic.formula_sets import exact_set
from model.spec import StepSpec
from model.step import build, make_batch, train_step
from profiler.measuring.cuda import cuda_device, release_cached_memory
from profiler.measuring.measure import step_phases
from profiler.measuring.search import confirm_max_batch, linear_guess


def _step_on_cuda(spec: StepSpec, device) -> None:
    """Warm-up and measured step; the tensors live only in this frame."""
    model, adamw = build(spec, device)
    tokens, targets = make_batch(spec.model, spec.batch_size, device)
    for _ in range(2):
        train_step(model, adamw, tokens, targets, spec.setup)


def fits_on_cuda(spec: StepSpec, budget_bytes: int, device="cuda") -> bool:
    """Whether a warm-up and a measured step of `spec` run without running out of memory within `budget_bytes`.

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
        _step_on_cuda(spec, device)
    except torch.OutOfMemoryError:
        out_of_memory = True  # recover below, outside the except block: its traceback holds the step's tensors
    finally:
        torch.cuda.set_per_process_memory_fraction(previous, device)
    release_cached_memory(device)  # gc.collect, empty_cache, reset_peak_memory_stats
    return not out_of_memory


def batch_fits(spec: StepSpec, budget_bytes: int, device: str = "meta", peaks: dict[int, int] | None = None,
               phases: dict[int, str] | None = None) -> Callable[[int], bool]:
    """fits(batch) for find_max_batch, the batch of one micro-batch (the step's batch is the setup's
    micro_batches times it; the spec's batch_size is not read). On "meta" (or "cpu"): the measured step's peak is
    within the budget. On "cuda" or "cuda:N": a real warm-up and measured step run under the emulated budget
    (fits_on_cuda). `peaks`, if given, gets the measured
    peak of each batch tried on meta or CPU, and a batch already in it is not measured again; `phases`, if given,
    the phase of each peak measured here (forward, backward or optimizer)."""
    if device.startswith("cuda"):
        cuda = cuda_device(device)  # fails here, before any search, where there is no GPU
        return lambda batch_size: fits_on_cuda(spec.replace(batch_size=spec.setup.micro_batches * batch_size),
                                               budget_bytes, cuda)

    known = peaks if peaks is not None else {}

    def fits(batch_size: int) -> bool:
        if batch_size not in known:
            step = spec.replace(batch_size=spec.setup.micro_batches * batch_size)
            figures = step_phases(step, device)
            known[batch_size] = figures["peak_bytes"]
            if phases is not None:
                phases[batch_size] = figures["peak_phase"]
        return known[batch_size] <= budget_bytes

    return fits


def measured_max_batch(spec: StepSpec, budget_bytes: int, device: str = "meta",
                       peaks: dict[int, int] | None = None) -> tuple[int, bool]:
    """(the largest batch, of one micro-batch, whose measured step fits budget_bytes; whether the exact set's
    answer was it): that answer confirmed by measuring it and one more, searched where a measurement refutes it
    or the exact set has no answer. `peaks` (batch -> measured peak on meta or CPU) is read and filled, so that
    several budgets share their measurements."""
    try:
        guess = exact_set().max_batch_size(spec, budget_bytes)
    except ValueError:  # outside the exact set's domain: searched
        guess = None
    peaks = {} if peaks is None else peaks
    fits = batch_fits(spec, budget_bytes, device, peaks)
    if guess is None and spec.setup.shard != "none":  # outside the exact set's sharded domain: extrapolated
        guess = linear_guess(fits, peaks, budget_bytes)
    return confirm_max_batch(fits, guess)
