"""Measure one training step: memory by phase and category, saved activations by component, FLOPs.

`measure(spec, device)` runs the very step of model.step.train_step: a warm-up step (AdamW creates
its state lazily inside it), then the measured steady-state step. On "meta" and "cpu" memory comes from the
storage-lifetime tracker (profiler.measuring.tracker); on "cuda" from the caching allocator's statistics
(profiler.measuring.cuda), after which one more step counts FLOPs and timed steps give step time and MFU. FLOPs
are counted op by op with FlopCounterMode's formulas and the extra ones of profiler.measuring.flops; forward
FLOPs are also attributed to components.

A Measurement holds what was measured, the step spec and the environment: never a prediction. Predictions are made
where they are compared (profiler.reports.compare).
"""
from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from analytic.figures import model_flops
from model.config import BUILTIN
from model.implementations import explained_failures
from model.setup import Setup
from model.spec import StepSpec
from model.step import build, make_batch, train_step
from model.transformer import SELECTIVE_SAVES
from model.vocabulary import CATEGORIES, COMPONENTS, DEVICES, PHASES
from profiler.measuring import flops as flop_counting
from profiler.measuring.allocator import simulate
from profiler.measuring.cuda import measure_cuda_memory
from profiler.measuring.phases import combine, windows
from profiler.measuring.sharded import ShardedRank
from profiler.measuring.snapshot import build_snapshot, write_snapshot
from profiler.measuring.speed import time_steps
from profiler.measuring.tracker import Mark, Replay, Roles, SavedTensorRecorder, StorageTracker, replay

TIMELINE_POINTS = 600


@dataclass
class Measurement:
    """One measured training step. `measured` holds the figures (analytic.figures keys); the rest says what was
    measured (the step spec), where and when."""

    spec: StepSpec
    device: str
    measured: dict[str, Any]
    device_name: str = ""
    timeline: dict[str, list] = field(default_factory=dict)
    flops_by_component: dict[str, int] = field(default_factory=dict)
    saved_activations_per_layer: dict[str, dict[str, int]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    torch_version: str = torch.__version__
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "device_name": self.device_name or self.device,
            "torch_version": self.torch_version, "dtype": self.spec.setup.dtype,
            "optimizer": self.spec.setup.optimizer, "date": self.date, "config": self.spec.flat(),
            "batch_size": self.spec.batch_size,
            "measured": self.measured, "timeline": self.timeline, "flops_by_component": self.flops_by_component,
            "saved_activations_per_layer": self.saved_activations_per_layer, "environment": self.environment,
        }


def resolve_device(device: str) -> str:
    """'auto' is 'cuda' where torch sees a GPU, else 'meta'; any other device is returned as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "meta"
    return device


def measure(spec: StepSpec, device: str = "meta", count_flops: bool = True,
            snapshot_path: str | Path | None = None, autocast_policy: str = "cuda", rank: int = 0,
            progress: bool = False) -> Measurement:
    """Measure a steady-state training step of `spec` (its model, setup and batch).

    device: "meta" (simulated, no memory used), "cpu", "cuda", or "auto" (cuda when present, else meta).
    snapshot_path: also write a memory snapshot there, for PyTorch's memory_viz: on CUDA the allocator's own
    (torch.cuda.memory._snapshot of the measured step), elsewhere the tracked events in its format
    (profiler.measuring.snapshot).
    autocast_policy: with the setup's autocast, whose autocast rules meta emulates ("cuda", what CUDA runs; "cpu", to
    check the emulation against real CPU autocast); CUDA and CPU run torch.autocast itself.
    rank: with the setup's shard, the rank measured (simulated on meta; on cpu, the process's own rank in its gloo
    group is measured and `rank` is not used).
    progress: a progress bar of the tracked steps' phases on stderr, where it is a terminal (meta and cpu).

    >>> from model import StepSpec, preset
    >>> from profiler import measure
    >>> step = measure(StepSpec(preset("gpt2-xl"), batch_size=1), device="meta")
    >>> step.measured["peak_phase"], step.measured["peak_bytes"] / 2**30  # doctest: +SKIP
    ('optimizer', 30.49...)
    """
    device = resolve_device(device)
    measure_arguments_check(spec, device)
    if device == "cuda" and spec.setup.shard != "none":
        raise ValueError("sharded steps are measured simulated (device meta) or in a gloo group (device cpu); "
                         "CUDA (NCCL) runs are not measured yet")
    with explained_failures(spec.model):
        if device == "cuda":
            return _measure_on_cuda(spec, count_flops, snapshot_path)
        return _measure_tracked(spec, device, count_flops, snapshot_path, autocast_policy, rank, progress)


def measure_arguments_check(spec: StepSpec, device: str) -> None:
    """One clear ValueError for a device or batch a measurement cannot take."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of auto, {', '.join(DEVICES)}, got {device!r}")
    if spec.batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {spec.batch_size}")
    if spec.setup.attention == "sdpa-efficient" and device == "cpu":
        raise ValueError("attention 'sdpa-efficient' has no CPU kernel; use device meta (simulated) or cuda")
    if spec.setup.optimizer == "fused" and device == "meta":
        raise ValueError("fused AdamW does not run on meta tensors; use foreach or forloop")


class OneDevice:
    """The setup of an unsharded step for _measure_tracked; profiler.measuring.sharded.ShardedRank is one rank's
    of a sharded step (same methods)."""

    categories = CATEGORIES
    rank = data_rank = 0

    def __init__(self, spec: StepSpec, device: str):
        self.spec, self.tracked_device = spec, device

    def __enter__(self) -> "OneDevice":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def build(self, spec: StepSpec, tracker: StorageTracker):
        return build(spec, self.tracked_device)

    def learn(self, model) -> None:
        pass

    def categorise(self, category_of: dict[int, str]) -> None:
        pass


def _measure_tracked(spec, device, count_flops, snapshot_path=None, autocast_policy="cuda", rank=0,
                     progress=False) -> Measurement:
    sharded = spec.setup.shard != "none"
    where = ShardedRank(spec, device, rank) if sharded else OneDevice(spec, device)
    with where:
        result = _run_tracked(where, spec, device, count_flops, snapshot_path, autocast_policy, progress)
    if sharded:
        result.measured["rank"] = where.rank
    return result


@dataclass
class TracedStep:
    """A warm-up and a measured step under the tracker: its events, marks by step ("warmup", "measured"), the
    category of every storage, what the measured step saved for backward (micro-batch 1), its FLOP counter. It
    holds the model, AdamW and the batch: their storages stay live (no free event) while it is kept."""

    model: torch.nn.Module
    adamw: torch.optim.Optimizer
    batch: tuple[torch.Tensor, torch.Tensor]
    tracker: StorageTracker
    category_of: dict[int, str]
    marks: dict[str, list[Mark]]
    saved: dict
    flop_counter: Any


def trace_step(where, spec: StepSpec, count_flops: bool = False, autocast_policy: str = "cuda",
               progress: bool = False, steps: tuple[str, ...] = ("warmup", "measured")) -> TracedStep:
    """The two steps of a measurement of `spec` where it is tracked (OneDevice, or ShardedRank inside its
    context), or as many as `steps` names (the exact model's derivation traces one where it needs the first only);
    with `progress`, a bar of their phases on stderr where it is a terminal."""
    setup = spec.setup
    bar = tqdm(total=len(steps) * (2 * setup.micro_batches + 2), unit="phase",
               desc=f"measuring {spec.model.name} on {where.tracked_device}", file=sys.stderr,
               disable=None if progress else True, leave=False)
    tracker = StorageTracker(where.tracked_device)
    with tracker:
        model, adamw = where.build(spec, tracker)
        tokens, targets = make_batch(spec.model, spec.batch_size, where.tracked_device, seed=where.data_rank)
    roles = Roles(parameters={tracker.sid(p) for p in model.parameters()},
                  buffers={tracker.sid(b) for b in model.buffers()},
                  inputs={tracker.sid(tokens), tracker.sid(targets)})
    recorder = SavedTensorRecorder(model, tracker, kept_ops(setup))
    ignore_host_scalars = where.tracked_device == "cpu" and setup.optimizer != "fused"
    flop_counter = flop_counting.OpFlops(recorder.current_component, recorder.in_block)
    marks: dict[str, list[Mark]] = {}  # step -> its marks in order
    saved = {}
    for step in steps:
        counting = count_flops and step == "measured"
        step_marks = marks[step] = []

        def mark(name):
            bar.update()
            if name in ("forward", "optimizer") and step_marks and not saved_in_first:
                saved_in_first.update(recorder.saved)  # what micro-batch 1 saved (recomputation included)
            step_marks.append(tracker.mark(name))
            tracker.ignore_host_scalars = ignore_host_scalars and name == "optimizer"
            if name == "optimizer":
                roles.gradients.update(tracker.sid(p.grad) for p in model.parameters() if p.grad is not None)
            flop_counter.phase = name if counting and name in PHASES else None

        recorder.saved, saved_in_first = {}, {}
        tracker.on_op = on_op(recorder, flop_counter if counting else None, step_marks)
        with recorder.recording(), tracker:
            train_step(model, adamw, tokens, targets, setup, mark, autocast_policy)
        tracker.on_op = None
        roles.optimizer_state.update(tracker.sid(t) for t in state_tensors(adamw) if tracker.sid(t) is not None)
        roles.saved_activations.update(recorder.saved)
        saved = saved_in_first
        # what the optimizer phase allocates is an optimizer temporary unless it stays (state is learnt above)
        start, stop = step_marks[-2].event_index, step_marks[-1].event_index
        roles.optimizer_temporaries.update(sid for sign, sid, _ in tracker.events[start:stop] if sign > 0)
        roles.parameters.update(tracker.sid(p) for p in model.parameters())  # FSDP2 pads uneven shards lazily
        where.learn(model)
    recorder.remove()
    bar.close()
    category_of = roles.categories()
    where.categorise(category_of)
    return TracedStep(model, adamw, (tokens, targets), tracker, category_of, marks, saved, flop_counter)


def _run_tracked(where, spec, device, count_flops, snapshot_path, autocast_policy, progress=False) -> Measurement:
    traced = trace_step(where, spec, count_flops, autocast_policy, progress)
    model, tracker, category_of, marks = traced.model, traced.tracker, traced.category_of, traced.marks
    saved, flop_counter = traced.saved, traced.flop_counter
    trace = replay(tracker, category_of, where.categories)
    if snapshot_path is not None:
        write_snapshot(build_snapshot(tracker, category_of, marks), snapshot_path)
    step_marks = marks["measured"]
    measured: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    measured.update(phase_figures(trace, step_marks))
    measured["warmup"] = phase_figures(trace, marks["warmup"])
    measured["allocator"] = allocator_view(tracker.events, step_marks)
    saved = {sid: record for sid, record in saved.items() if sid not in tracker.ignored}  # host outputs
    builtin = spec.model.source == BUILTIN
    saved_by_component, saved_per_layer = saved_breakdown(saved, tracker.nbytes, category_of,
                                                          COMPONENTS if builtin else ())
    first_backward = next(mark for mark in step_marks if mark.name == "backward")
    measured["saved_activations_bytes"] = trace.at(first_backward.event_index)["saved_activations"]
    measured["saved_activations_by_component"] = saved_by_component
    measured["saved_activations_by_op"] = saved_by_op(saved, tracker.nbytes, category_of)
    measured["saved_activations_per_layer_bytes"] = per_layer_bytes(saved_per_layer, spec.model.num_layers)
    result = Measurement(spec, device, measured,
                         timeline=timeline(trace, step_marks), saved_activations_per_layer=saved_per_layer)
    if count_flops:
        measured.update(flop_figures(flop_counter.by_phase, measured["params"]))
        result.flops_by_component = flop_counter.forward_by_component
    return result


def step_phases(spec: StepSpec, device: str = "meta") -> dict:
    """The measured step's phase figures (peak_bytes, peak_phase, phases.<phase> peak, start and end bytes, and
    micro_batches with k > 1) and the parameter count, as measure() gives them (a test checks it on random
    setups), at about half the cost, for the largest-batch probes and the audit: on one device the warm-up step
    leaves only AdamW's state behind (warm_up_adamw makes it without a forward and backward), and no category is
    learnt. A sharded step takes measure(): FSDP2 initialises itself in its first forward."""
    setup = spec.setup
    if setup.shard != "none" or device == "cuda":
        measured = measure(spec, device, count_flops=False).measured
        return {key: measured[key] for key in ("params", "peak_bytes", "peak_phase", "phases", "micro_batches")
                if key in measured}
    measure_arguments_check(spec, device)
    with explained_failures(spec.model):
        return _step_phases_on_one_device(spec, device)


def _step_phases_on_one_device(spec: StepSpec, device: str) -> dict:
    setup = spec.setup
    model, adamw = build(spec, device)
    tokens, targets = make_batch(spec.model, spec.batch_size, device)
    warm_up_adamw(model, adamw, setup)
    host_scalars = device == "cpu" and setup.optimizer != "fused"  # AdamW's step counters: see the tracker's docstring
    tracker = StorageTracker(device)
    gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
    for tensor in [*model.parameters(), *model.buffers(), tokens, targets, *gradients, *state_tensors(adamw)]:
        tracker.sid(tensor, host=host_scalars and tensor.dim() == 0)

    def mark(name):
        tracker.mark(name)
        tracker.ignore_host_scalars = host_scalars and name == "optimizer"

    with tracker:
        train_step(model, adamw, tokens, targets, setup, mark)
    figures = phase_figures(replay(tracker, {}), tracker.marks, categories=False)
    return {"params": sum(parameter.numel() for parameter in model.parameters()), **figures}


def state_tensors(adamw: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The tensors of the optimizer's state (AdamW's moments and step counters)."""
    return [value for values in adamw.state.values() for value in values.values() if isinstance(value, torch.Tensor)]


def warm_up_adamw(model, adamw, setup: Setup) -> None:
    """What a warm-up step leaves behind on one device, without its forward and backward: AdamW's state, created
    by one AdamW step on zero gradients, and the gradients zeroed in place with zero_grad 'zeros' (freed with
    'none')."""
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    adamw.step()
    adamw.zero_grad(set_to_none=setup.zero_grad == "none")


def kept_ops(setup: Setup) -> frozenset:
    """The ops whose outputs the setup's checkpointing keeps outside autograd's saved tensors."""
    return SELECTIVE_SAVES if setup.checkpointing == "selective" else frozenset()


def on_op(recorder: SavedTensorRecorder, counter, marks: list[Mark]):
    """The tracker's callback for one step: selective checkpointing's kept outputs noted in forward, and FLOPs."""
    def callback(func, args, kwargs, out):
        if marks and marks[-1].name == "forward":
            recorder.note_op(func, out)
        if counter is not None:
            counter.count(func, args, kwargs, out)
    return callback


def _measure_on_cuda(spec, count_flops, snapshot_path=None) -> Measurement:
    """measure_cuda_memory's figures in a Measurement; with count_flops, one more step counts FLOPs after the
    memory measurement (so counting cannot change the memory measured), then timed steps give step time and
    MFU (profiler.measuring.speed)."""
    by_component: dict[str, int] = {}

    def flops_and_speed(model, adamw, tokens, targets, figures) -> None:
        by_component.update(count_step_flops(model, adamw, tokens, targets, spec.setup, figures))
        autocast = spec.setup.autocast
        compute_dtype = None if autocast == "none" else autocast  # the MFU's peak: autocast's dtype
        figures["speed"] = time_steps(model, adamw, tokens, targets, spec.setup,
                                      flops_per_step=model_flops(figures["flops"]), compute_dtype=compute_dtype)

    figures = measure_cuda_memory(spec, "cuda", snapshot_path=snapshot_path,
                                  after_step=flops_and_speed if count_flops else None)
    environment = figures.pop("environment")
    return Measurement(spec, "cuda", figures, device_name=environment["device_name"],
                       flops_by_component=by_component, environment=environment)


def allocator_view(events, marks: list[Mark]) -> dict[str, Any]:
    """What the CUDA caching allocator would count (allocated_bytes, as max_memory_allocated reports it) for the
    same allocations and frees, replayed through profiler.measuring.allocator's model from the model's
    construction on: the measured step's peak and phase peaks, comparable with a CUDA run at the allocator's
    granularity."""
    simulated = simulate(events)
    per_window = [(phase, index, simulated.window(begin.event_index, end.event_index))
                  for (phase, index), begin, end in zip(windows([m.name for m in marks]), marks, marks[1:])]
    figures = combine(per_window)
    return {"peak_bytes": figures["peak_bytes"],
            "phases": {name: {"peak_bytes": figures["phases"][name]["peak_bytes"]} for name in PHASES}}


def phase_figures(trace: Replay, marks: list[Mark], categories: bool = True) -> dict[str, Any]:
    """Peak, start and end bytes of each phase (and of each micro-batch's), which phase holds the step's peak,
    and with `categories` the categories at each peak (profiler.measuring.phases)."""
    per_window = []
    for (phase, index), begin, end in zip(windows([mark.name for mark in marks]), marks, marks[1:]):
        point = trace.peak_point(begin.event_index, end.event_index)
        window = {"peak_bytes": int(trace.live[point]), "start_bytes": int(trace.live[begin.event_index]),
                  "end_bytes": int(trace.live[end.event_index])}
        if categories:
            window["categories_at_peak"] = trace.at(point)
        per_window.append((phase, index, window))
    figures = combine(per_window)
    if categories:
        figures["categories_at_peak"] = figures["phases"][figures["peak_phase"]]["categories_at_peak"]
    return figures


def per_layer_bytes(saved_per_layer: dict[str, dict[str, int]], num_layers: int) -> int | float:
    """What one layer keeps for backward: the layers' saved bytes over the number of layers (an integer when they
    keep the same, as every layout does)."""
    total = sum(sum(components.values()) for components in saved_per_layer.values())
    return total // num_layers if total % num_layers == 0 else total / num_layers


def saved_breakdown(saved, nbytes, category_of, components=COMPONENTS) -> tuple[dict[str, int],
                                                                              dict[str, dict[str, int]]]:
    """Bytes of saved activations by component, in total and per layer (a storage counts once); `components`
    listed first, at 0 where they keep nothing (the built-in model's; a user's model has its module paths)."""
    by_component = dict.fromkeys(components, 0)
    per_layer: dict[str, dict[str, int]] = {}
    for sid, record in saved.items():
        if category_of.get(sid) != "saved_activations":
            continue
        by_component[record.component] = by_component.get(record.component, 0) + nbytes[sid]
        if record.layer is not None:
            layer = per_layer.setdefault(str(record.layer), {})
            layer[record.component] = layer.get(record.component, 0) + nbytes[sid]
    return by_component, per_layer


def saved_by_op(saved, nbytes, category_of) -> dict[str, int]:
    """Bytes of saved activations by the op that allocated them ('aten.mm'), largest first."""
    by_op: dict[str, int] = {}
    for sid, record in saved.items():
        if category_of.get(sid) == "saved_activations":
            by_op[record.op or "(no op)"] = by_op.get(record.op or "(no op)", 0) + nbytes[sid]
    return dict(sorted(by_op.items(), key=lambda item: -item[1]))


def measure_flops(spec: StepSpec, device: str = "meta") -> dict:
    """FLOP figures alone (flops, flops_matmul, adamw_flops_per_param, params) of a steady-state step: AdamW's
    state made as a warm-up step would (warm_up_adamw), then one step counted op by op; the same figures as
    measure() gives (a test checks), without tracking memory."""
    model, adamw = build(spec, device)
    tokens, targets = make_batch(spec.model, spec.batch_size, device)
    warm_up_adamw(model, adamw, spec.setup)
    figures: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    count_step_flops(model, adamw, tokens, targets, spec.setup, figures)
    return figures


def count_step_flops(model, adamw, tokens, targets, setup: Setup, measured: dict) -> dict[str, int]:
    """One more training step with FLOPs counted op by op (for devices whose memory comes from elsewhere, such as
    CUDA): adds the FLOP figures to `measured`, returns forward FLOPs by component."""
    tracker = StorageTracker(next(model.parameters()).device.type)
    components = SavedTensorRecorder(model, tracker)  # its module hooks name the component of each op
    counter = flop_counting.OpFlops(components.current_component, components.in_block)
    tracker.on_op = counter.count
    with tracker:
        train_step(model, adamw, tokens, targets, setup,
                   lambda name: setattr(counter, "phase", name if name in PHASES else None))
    components.remove()
    measured.update(flop_figures(counter.by_phase, measured["params"]))
    return counter.forward_by_component


def flop_figures(by_phase: dict[str, dict], params: int) -> dict[str, Any]:
    """FLOPs per phase ({phase: {op: FLOPs}}): all of them, and the matmul part (what FlopCounterMode counts);
    "recompute" is the part of backward that checkpointing spends running blocks' forward again; flops_by_op, each
    phase's FLOPs by op ('aten.mm'), largest first."""
    flops, matmul = {}, {}
    for phase in PHASES + ("recompute",):
        matmul[phase], elementwise = flop_counting.split_counts(by_phase.get(phase, {}))
        flops[phase] = matmul[phase] + elementwise
    by_op = {phase: dict(sorted(((str(op), count) for op, count in by_phase.get(phase, {}).items() if count),
                                key=lambda item: -item[1])) for phase in PHASES}
    return {"flops": flops, "flops_matmul": {"forward": matmul["forward"], "backward": matmul["backward"]},
            "adamw_flops_per_param": flops["optimizer"] / params, "flops_by_op": by_op}


def timeline(trace: Replay, marks: list[Mark]) -> dict[str, list]:
    """Live bytes by category over the measured step, at most TIMELINE_POINTS points (each bucket's highest)."""
    points = np.arange(marks[0].event_index, marks[-1].event_index + 1)
    if len(points) > TIMELINE_POINTS:
        buckets = np.array_split(points, TIMELINE_POINTS)
        points = np.array([bucket[np.argmax(trace.live[bucket])] for bucket in buckets])
    starts = [mark.event_index for mark in marks[:-1]]
    window_of = np.searchsorted(starts, points, side="right") - 1
    result = {"op_index": trace.event_ops[points].tolist(),
              "phase": [marks[min(max(i, 0), len(starts) - 1)].name for i in window_of]}
    for index, name in enumerate(trace.categories):
        result[name] = trace.by_category[index, points].tolist()
    return result
