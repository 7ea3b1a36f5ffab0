"""Step time, throughput and MFU of the one training step.

On CUDA each step is timed with a pair of CUDA events after the warm-up steps and a synchronize; elsewhere
(CPU, for tests) with time.perf_counter, and the result says which timer was used. Every timing carries the
float32 matmul settings, because TF32 changes both the speed and the peak the MFU is taken against.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from analytic.hardware import mfu, peak_flops
from model.setup import Setup
from model.step import train_step
from profiler.measuring.cuda import matmul_settings, uses_tf32


def summarize_timings(step_seconds: list[float], tokens_per_step: int, flops_per_step: int | None = None,
                      peak: int | None = None) -> dict[str, Any]:
    """Median step time and what follows from it; FLOP/s need flops_per_step, MFU needs a peak as well.

    tokens_per_second = tokens_per_step / median;  achieved_flops_per_second = flops_per_step / median;
    mfu = achieved / peak.
    """
    if not step_seconds:
        raise ValueError("no step was timed")
    median = statistics.median(step_seconds)
    result: dict[str, Any] = {
        "step_seconds": median,
        "step_seconds_all": list(step_seconds),
        "tokens_per_second": tokens_per_step / median,
        "flops_per_step": flops_per_step,
        "achieved_flops_per_second": None,
        "peak_flops_per_second": peak,
        "mfu": None,
    }
    if flops_per_step is not None:
        result["achieved_flops_per_second"] = flops_per_step / median
        if peak is not None:
            result["mfu"] = mfu(flops_per_step, median, peak)
    return result


def _device_peak(device: torch.device, dtype: str, settings: dict[str, Any]) -> int | None:
    """The table's peak for this GPU and dtype, or None off CUDA or for a device the table does not know."""
    if device.type != "cuda":
        return None
    try:
        return peak_flops(torch.cuda.get_device_name(device), dtype, tf32=uses_tf32(settings))
    except ValueError:
        return None


def _time_one(model, adamw, tokens, targets, setup, use_events: bool) -> float:
    if use_events:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        train_step(model, adamw, tokens, targets, setup)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0  # elapsed_time is in milliseconds
    begin = time.perf_counter()
    train_step(model, adamw, tokens, targets, setup)
    return time.perf_counter() - begin


def time_steps(model: torch.nn.Module, adamw: torch.optim.Optimizer, tokens: torch.Tensor,
               targets: torch.Tensor, setup: Setup, warmup: int = 2, repeats: int = 5,
               flops_per_step: int | None = None, peak: int | None = None,
               compute_dtype: str | None = None) -> dict[str, Any]:
    """Time `repeats` training steps (in `setup`, a model.setup.Setup) after `warmup` untimed ones.

    Returns summarize_timings' keys plus "timer" ("cuda_event" or "perf_counter"), "device", "dtype",
    "warmup", "repeats" and "matmul" (allow_tf32, float32_matmul_precision, cudnn_allow_tf32). Without an explicit
    `peak`, a CUDA device found in analytic.hardware's table supplies it (TF32 peak if TF32 is on for float32),
    for `compute_dtype` (the dtype the matmuls run in: autocast's, as "bfloat16") or else the parameters' dtype.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    device = tokens.device
    use_events = device.type == "cuda"
    settings = matmul_settings()
    dtype = compute_dtype or str(next(model.parameters()).dtype).removeprefix("torch.")
    for _ in range(warmup):
        train_step(model, adamw, tokens, targets, setup)
    if use_events:
        torch.cuda.synchronize(device)
    times = [_time_one(model, adamw, tokens, targets, setup, use_events) for _ in range(repeats)]
    if peak is None:
        peak = _device_peak(device, dtype, settings)
    result = summarize_timings(times, tokens.numel(), flops_per_step, peak)
    result.update(timer="cuda_event" if use_events else "perf_counter", device=str(device),
                  dtype=dtype, warmup=warmup, repeats=repeats, matmul=settings)
    return result
