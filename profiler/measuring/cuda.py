"""The CUDA backend: memory of one training step as the CUDA caching allocator counts it, phase by phase.

A backend only: it imports nothing of the profiler above it; profiler.measuring.measure turns its figures into a
Measurement (with FLOPs and step time).

measure_cuda_memory builds the model and AdamW on the GPU, runs one warm-up step (optimizer state is created
lazily inside its first step(), and cuBLAS allocates its workspaces at the first matmul), then the measured step.
At every phase boundary (model.step.train_step's `mark` hook) it synchronizes, reads memory_allocated() and the
peaks of the phase that ends, and resets the peaks. reset_peak_memory_stats() sets a peak to the CURRENT value,
not zero, so each phase's peak is at least its start.

Units: integers of bytes as the allocator counts them: allocated_bytes counts whole blocks (requests rounded up
to 512 B, large-pool blocks over-counted by up to 1 MiB; see profiler.measuring.allocator); requested_bytes counts the
exact bytes asked for.
"""
from __future__ import annotations

import gc
import os
from typing import Any, Callable

import torch

from model.spec import StepSpec
from model.step import build, make_batch, train_step
from profiler.errors import CudaUnavailableError
from profiler.measuring.phases import combine, windows

ALLOC_CONF_VARIABLES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def cuda_device(device: str | torch.device = "cuda") -> torch.device:
    """The torch.device for `device`, checked to be a CUDA device torch can use."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"a CUDA measurement needs a cuda device, got {str(device)!r}")
    if not torch.cuda.is_available():
        raise CudaUnavailableError(f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is "
                                   f"False; CUDA build: {torch.version.cuda})")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def matmul_settings() -> dict[str, Any]:
    """The float32 matmul settings that decide whether TF32 tensor cores are used (CPU-safe)."""
    return {
        "allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }


def uses_tf32(settings: dict[str, Any]) -> bool:
    """float32 matmuls run on TF32 tensor cores when allow_tf32 is set or the precision is not "highest"."""
    return settings["allow_tf32"] or settings["float32_matmul_precision"] != "highest"


def environment(device: torch.device) -> dict[str, Any]:
    """What a CUDA figure depends on besides the model: device, versions, allocator and kernel settings."""
    properties = torch.cuda.get_device_properties(device)
    return {
        "device_name": torch.cuda.get_device_name(device),
        "total_memory_bytes": int(properties.total_memory),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "alloc_conf": {name: os.environ.get(name) for name in ALLOC_CONF_VARIABLES},
        "allocator_backend": torch.cuda.get_allocator_backend(),
        "matmul": matmul_settings(),
        "sdpa_backends": {
            "flash": torch.backends.cuda.flash_sdp_enabled(),
            "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
            "math": torch.backends.cuda.math_sdp_enabled(),
            "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
        },
    }


class AllocatorReader:
    """The four allocator calls a PhaseRecorder needs, on one device (a fake stands in for it in CPU tests)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def allocated(self) -> int:
        return int(torch.cuda.memory_allocated(self.device))

    def peaks(self) -> dict[str, int]:
        stats = torch.cuda.memory_stats(self.device)
        return {"peak_bytes": int(stats["allocated_bytes.all.peak"]),
                "requested_peak_bytes": int(stats["requested_bytes.all.peak"]),
                "reserved_peak_bytes": int(stats["reserved_bytes.all.peak"])}

    def reset_peaks(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)


class PhaseRecorder:
    """train_step's `mark` hook: start, end and peaks of each window between marks from the allocator's
    statistics, combined into phase figures by profiler.measuring.phases."""

    def __init__(self, reader: AllocatorReader) -> None:
        self.reader = reader
        self.marks: list[str] = []
        self.windows: list[dict[str, int]] = []
        self._start = 0

    def mark(self, phase: str) -> None:
        self.reader.synchronize()
        now = self.reader.allocated()
        if self.marks and self.marks[-1] != "end":
            self.windows.append({"start_bytes": self._start, "end_bytes": now, **self.reader.peaks()})
        self.marks.append(phase)
        self._start = now
        if phase != "end":
            self.reader.reset_peaks()

    def figures(self) -> dict[str, Any]:
        """{"peak_bytes", "peak_phase", "phases": {phase: {...}}, ["micro_batches"]}: the overall peak is the
        largest phase peak."""
        if not self.windows:
            raise ValueError("no phase was recorded: was the step run with this recorder's mark?")
        names = windows(self.marks)
        return combine([(phase, index, figures) for (phase, index), figures in zip(names, self.windows)])


def release_cached_memory(device: torch.device) -> None:
    """Drop unreachable tensors, cuBLAS's cached workspaces and the allocator's cached blocks, so the next
    measurement starts clean. The workspaces matter: the steps that count FLOPs and time a measurement re-create
    them after its own were cleared and measured, and a next measurement would count them twice, once as memory
    allocated before its build and once as the workspaces its clearing frees (64 MiB on an H200, torch 2.11)."""
    gc.collect()
    torch.cuda.synchronize(device)
    _clear_cublas_workspaces()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)


def _clear_cublas_workspaces() -> bool:
    """Free cuBLAS's cached workspaces (re-created at the next matmul); False where torch has no such call."""
    clear: Callable[[], None] | None = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()
    return clear is not None


def _cublas_workspace_bytes(device: torch.device) -> int | None:
    """Bytes freed by clearing cuBLAS's cached workspaces; None if unsupported."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    if not _clear_cublas_workspaces():
        return None
    return int(before - torch.cuda.memory_allocated(device))


AfterStep = Callable[[torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor, dict], None]


def _run_measurement(spec: StepSpec, device: torch.device,
                     snapshot_path: str | os.PathLike | None, after_step: AfterStep | None) -> dict[str, Any]:
    """Build, warm up, measure; every tensor is local here, so it all dies when this returns or raises."""
    reader = AllocatorReader(device)
    reader.synchronize()
    preexisting = reader.allocated()
    model, adamw = build(spec, device)
    tokens, targets = make_batch(spec.model, spec.batch_size, device)
    reader.synchronize()
    model_and_batch = reader.allocated() - preexisting

    warmup = PhaseRecorder(reader)
    train_step(model, adamw, tokens, targets, spec.setup, warmup.mark)

    measured = PhaseRecorder(reader)
    if snapshot_path is not None:
        torch.cuda.memory._record_memory_history(max_entries=1_000_000, device=device)
    try:
        train_step(model, adamw, tokens, targets, spec.setup, measured.mark)
    finally:
        if snapshot_path is not None:
            torch.cuda.memory._dump_snapshot(str(snapshot_path))
            torch.cuda.memory._record_memory_history(enabled=None, device=device)
    figures = measured.figures()
    workspaces = _cublas_workspace_bytes(device)
    start = figures["phases"]["forward"]["start_bytes"]
    figures["warmup"] = warmup.figures()
    figures["baseline_bytes"] = preexisting + (workspaces or 0)
    figures["baseline"] = {
        "preexisting_bytes": preexisting,  # allocated before the model was built
        "cublas_workspace_bytes": workspaces,  # created during the warm-up; still held by the measured step
        "model_and_batch_bytes": model_and_batch,  # parameters, buffers, tokens and targets, as allocated
        "warmup_residue_bytes": start - preexisting - model_and_batch,  # optimizer state + workspaces + other
    }
    figures["params"] = sum(p.numel() for p in model.parameters())
    if after_step is not None:
        after_step(model, adamw, tokens, targets, figures)
    return figures


def measure_cuda_memory(spec: StepSpec, device: str | torch.device = "cuda", *,
                        snapshot_path: str | os.PathLike | None = None,
                        after_step: AfterStep | None = None) -> dict[str, Any]:
    """Allocator figures of a warm-up step and the measured (steady-state) step that follows it.

    Returns the analytic.figures keys of a measurement:
        params                                       parameter count
        peak_bytes, peak_phase                       of the measured step
        phases.<phase>.{start_bytes, end_bytes, peak_bytes, requested_peak_bytes, reserved_peak_bytes}
        warmup.{peak_bytes, peak_phase, phases...}   the first step, optimizer state created inside it
        baseline_bytes                               allocated memory that is not model, optimizer or batch:
                                                     what was allocated before the build + cuBLAS workspaces.
                                                     It is INCLUDED in every figure above, never subtracted.
        baseline.{preexisting_bytes, cublas_workspace_bytes, model_and_batch_bytes, warmup_residue_bytes}
        environment.{device_name, total_memory_bytes, torch_version, cuda_version, alloc_conf, matmul, ...}
    The cuBLAS workspace is measured by clearing it after the measured step (torch._C._cuda_clearCublasWorkspaces;
    None where that is missing). snapshot_path: write a torch.cuda.memory snapshot of the measured step there
    (open it at pytorch.org/memory_viz). after_step(model, adamw, tokens, targets, figures), if given, runs
    after the measurement and before the cleanup (profiler.measuring.measure counts FLOPs and times steps there).
    """
    device = cuda_device(device)
    release_cached_memory(device)
    try:
        figures = _run_measurement(spec, device, snapshot_path, after_step)
    finally:
        release_cached_memory(device)
    figures["environment"] = environment(device)
    return figures
