"""Measure one training step: memory by phase and category, saved activations by component, FLOPs.

`measure(config, batch_size, device)` runs the very step of model.step.train_step: a warm-up step (AdamW creates
its state lazily inside it), then the measured steady-state step. On "meta" and "cpu" memory comes from the
storage-lifetime tracker (profiler.tracker); on "cuda" from the caching allocator's statistics (profiler.cuda).
FLOPs are counted during the measured step, op by op, with FlopCounterMode's formulas and the extra ones of
profiler.flops (profiler.flops.OpFlops); forward FLOPs are also attributed to components.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from analytic.formula_sets import predict
from model.config import ModelConfig
from model.step import build, make_batch, train_step
from model.vocabulary import CATEGORIES, COMPONENTS, OPTIMIZER_IMPLEMENTATIONS, PHASES
from profiler import flops as flop_counting
from profiler.tracker import Replay, Roles, SavedTensorRecorder, StorageTracker, replay

DEVICES = ("meta", "cpu", "cuda")
TIMELINE_POINTS = 600


@dataclass
class Measurement:
    config: ModelConfig
    batch_size: int
    device: str
    optimizer: str
    measured: dict[str, Any]
    device_name: str = ""
    timeline: dict[str, list] = field(default_factory=dict)
    flops_by_component: dict[str, int] = field(default_factory=dict)
    saved_activations_per_layer: dict[str, dict[str, int]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))

    def to_dict(self, with_predictions: bool = True) -> dict[str, Any]:
        result = {
            "device": self.device, "device_name": self.device_name or self.device,
            "torch_version": torch.__version__, "dtype": self.config.dtype, "optimizer": self.optimizer,
            "date": self.date, "config": self.config.to_dict(), "batch_size": self.batch_size,
            "measured": self.measured,
        }
        if with_predictions:
            result["predicted"] = predict(self.config, self.batch_size, self.optimizer)
        result.update(timeline=self.timeline, flops_by_component=self.flops_by_component,
                      saved_activations_per_layer=self.saved_activations_per_layer,
                      environment=self.environment)
        return result


def measure(config: ModelConfig, batch_size: int, device: str = "meta", optimizer: str = "foreach",
            count_flops: bool = True) -> Measurement:
    """Measure a steady-state training step of `config` at `batch_size` on `device` (see module docstring)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if optimizer not in OPTIMIZER_IMPLEMENTATIONS:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_IMPLEMENTATIONS}, got {optimizer!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if optimizer == "fused" and device == "meta":
        raise ValueError("fused AdamW does not run on meta tensors; use foreach or forloop, or device cpu/cuda")
    if device == "cuda":
        from profiler.cuda import measure_cuda
        return measure_cuda(config, batch_size, optimizer, count_flops=count_flops)
    return _measure_tracked(config, batch_size, device, optimizer, count_flops)


def _measure_tracked(config, batch_size, device, optimizer, count_flops) -> Measurement:
    tracker = StorageTracker(device)
    with tracker:
        model, adamw = build(config, device, optimizer)
        tokens, targets = make_batch(config, batch_size, device)
    roles = Roles(parameters={tracker.sid(p) for p in model.parameters()},
                  buffers={tracker.sid(b) for b in model.buffers()},
                  inputs={tracker.sid(tokens), tracker.sid(targets)})
    recorder = SavedTensorRecorder(model, tracker)
    ignore_host_scalars = device == "cpu" and optimizer != "fused"
    steps = []
    flop_counter = flop_counting.OpFlops(component=recorder.current_component)
    for step in ("warmup", "measured"):
        counting = count_flops and step == "measured"

        def mark(phase):
            tracker.mark(phase)
            tracker.ignore_host_scalars = ignore_host_scalars and phase == "optimizer"
            if phase == "optimizer":
                roles.gradients.update(tracker.sid(p.grad) for p in model.parameters() if p.grad is not None)
            flop_counter.phase = phase if counting and phase in PHASES else None

        recorder.saved = {}
        first_mark = len(tracker.marks)
        tracker.on_op = flop_counter.count if counting else None
        with recorder.recording(), tracker:
            train_step(model, adamw, tokens, targets, mark)
        tracker.on_op = None
        roles.optimizer_state.update(tracker.sid(t) for state in adamw.state.values() for t in state.values()
                                     if isinstance(t, torch.Tensor) and tracker.sid(t) is not None)
        roles.saved_activations.update(recorder.saved)
        steps.append((tracker.marks[first_mark:first_mark + 4], dict(recorder.saved)))
    recorder.remove()

    for marks, _ in steps:  # what the optimizer phase allocates is an optimizer temporary unless it stays
        start, stop = marks[2].event_index, marks[3].event_index
        roles.optimizer_temporaries.update(sid for sign, sid, _ in tracker.events[start:stop] if sign > 0)
    category_of = roles.categories()
    trace = replay(tracker, category_of)

    (warm_marks, _), (marks, saved) = steps
    measured = {"params": sum(p.numel() for p in model.parameters())}
    measured.update(phase_figures(trace, marks))
    measured["warmup"] = phase_figures(trace, warm_marks)
    measured["allocator"] = allocator_view(tracker.events, marks)
    saved_by_component, saved_per_layer = saved_breakdown(saved, tracker.nbytes, category_of)
    measured["saved_activations_bytes"] = trace.at(marks[1].event_index)["saved_activations"]
    measured["saved_activations_by_component"] = saved_by_component
    result = Measurement(config, batch_size, device, optimizer, measured,
                         timeline=timeline(trace, marks[0].event_index, marks[3].event_index, marks),
                         saved_activations_per_layer=saved_per_layer)
    if count_flops:
        measured.update(flop_figures(flop_counter.by_phase, measured["params"]))
        result.flops_by_component = flop_counter.forward_by_component
    return result


def allocator_view(events, marks) -> dict[str, Any]:
    """What the CUDA caching allocator would count (allocated_bytes, as max_memory_allocated reports it) for the
    same allocations and frees, replayed through profiler.allocator's model from the model's construction on: the
    measured step's peak and phase peaks, comparable with a CUDA run at the allocator's granularity."""
    from profiler.allocator import simulate
    phases = simulate(events).phases({mark.name: mark.event_index for mark in marks})
    peak = max(figures["peak_bytes"] for figures in phases.values())
    return {"peak_bytes": peak, "phases": {name: {"peak_bytes": phases[name]["peak_bytes"]} for name in PHASES}}


def phase_figures(trace: Replay, marks) -> dict[str, Any]:
    """Peak, start and end bytes of each phase, which phase holds the step's peak, categories at each peak."""
    phases, points = {}, {}
    for phase, begin, end in zip(PHASES, marks, marks[1:]):
        point = trace.peak_point(begin.event_index, end.event_index)
        points[phase] = point
        phases[phase] = {"peak_bytes": int(trace.live[point]),
                         "start_bytes": int(trace.live[begin.event_index]),
                         "end_bytes": int(trace.live[end.event_index]),
                         "categories_at_peak": trace.at(point)}
    peak_phase = max(PHASES, key=lambda phase: (phases[phase]["peak_bytes"], -PHASES.index(phase)))
    return {"peak_bytes": phases[peak_phase]["peak_bytes"], "peak_phase": peak_phase,
            "categories_at_peak": trace.at(points[peak_phase]), "phases": phases}


def saved_breakdown(saved, nbytes, category_of) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Bytes of saved activations by component, in total and per layer (a storage counts once)."""
    by_component = dict.fromkeys(COMPONENTS, 0)
    per_layer: dict[str, dict[str, int]] = {}
    for sid, record in saved.items():
        if category_of.get(sid) != "saved_activations":
            continue
        by_component[record.component] = by_component.get(record.component, 0) + nbytes[sid]
        if record.layer is not None:
            layer = per_layer.setdefault(str(record.layer), {})
            layer[record.component] = layer.get(record.component, 0) + nbytes[sid]
    return by_component, per_layer


def count_step_flops(model, optimizer, tokens, targets, measured: dict) -> dict[str, int]:
    """One more training step with FLOPs counted op by op (for devices whose memory comes from elsewhere, such as
    CUDA): adds the FLOP figures to `measured`, returns forward FLOPs by component."""
    device_type = next(model.parameters()).device.type
    tracker, recorder = StorageTracker(device_type), SavedTensorRecorder(model, StorageTracker(device_type))
    counter = flop_counting.OpFlops(component=recorder.current_component)
    tracker.on_op = counter.count
    with recorder.recording(), tracker:
        train_step(model, optimizer, tokens, targets,
                   lambda phase: setattr(counter, "phase", phase if phase in PHASES else None))
    recorder.remove()
    measured.update(flop_figures(counter.by_phase, measured["params"]))
    return counter.forward_by_component


def flop_figures(by_phase: dict[str, dict], params: int) -> dict[str, Any]:
    """FLOPs per phase ({phase: {op: FLOPs}}): all of them, and the matmul part (what FlopCounterMode counts)."""
    flops, matmul = {}, {}
    for phase in PHASES:
        matmul[phase], elementwise = flop_counting.split_counts(by_phase.get(phase, {}))
        flops[phase] = matmul[phase] + elementwise
    return {"flops": flops, "flops_matmul": {"forward": matmul["forward"], "backward": matmul["backward"]},
            "adamw_flops_per_param": flops["optimizer"] / params}


def timeline(trace: Replay, start: int, stop: int, marks) -> dict[str, list]:
    """Live bytes by category over the measured step, at most TIMELINE_POINTS points (each bucket's highest)."""
    points = np.arange(start, stop + 1)
    if len(points) > TIMELINE_POINTS:
        buckets = np.array_split(points, TIMELINE_POINTS)
        points = np.array([bucket[np.argmax(trace.live[bucket])] for bucket in buckets])
    phase_of = np.searchsorted([m.event_index for m in marks[1:4]], points, side="right")
    result = {"op_index": trace.event_ops[points].tolist(),
              "phase": [PHASES[min(i, 2)] for i in phase_of]}
    for index, name in enumerate(CATEGORIES):
        result[name] = trace.by_category[index, points].tolist()
    return result
