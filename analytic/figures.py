"""The one shape shared by predictions and measurements: a nested dict of "figures".

A formula set's `predict(...)` and a Measurement's "measured" block use the same keys; a formula set gives only
the keys it predicts. Integers of bytes and FLOPs throughout.

    params                                   parameter count
    peak_bytes                               overall peak of a steady-state step
    peak_phase                               "forward" | "backward" | "optimizer": the phase holding peak_bytes
    phases.<phase>.peak_bytes                peak within the phase (steady state)
    phases.<phase>.start_bytes / end_bytes   live bytes when the phase begins / ends
    categories_at_peak.<category>            bytes by category at the overall peak (sum = peak_bytes)
    saved_activations_bytes                  bytes autograd keeps for backward at the end of forward
    saved_activations_by_component.<comp>    the same by component (sum = saved_activations_bytes)
    flops.<phase>                            all FLOPs (matmul + elementwise convention) per phase
    model_states.<category>                  parameters, gradients and optimizer_state when all three exist: at the
                                             optimizer step's peak (ZeRO's "model states"; derived by
                                             with_model_states from phases.optimizer.categories_at_peak)
    model_states_bytes                       their sum
    flops.recompute                          the part of flops.backward that checkpointing spends re-running
                                             blocks' forward (0 without checkpointing)
    flops_matmul.forward / backward          matmul FLOPs alone (what FlopCounterMode counts)
    adamw_flops_per_param                    optimizer FLOPs / params
    warmup.peak_bytes, warmup.phases...      the first step (optimizer state created inside it)

Phases, categories and components are the names in model.vocabulary.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np


def flatten(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"phases": {"forward": {"peak_bytes": 1}}} -> {"phases.forward.peak_bytes": 1}."""
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


# Every key a measurement holds, and the two an answer states for the audit (fixed and per-batch memory), as
# patterns over dotted keys ("*" one name, "**" the rest): a set's predictions must use these
# (analytic.formula_sets checks users' files with is_figure_key).
FIGURE_KEYS = ("params", "peak_bytes", "peak_phase", "phases.*.*", "phases.*.categories_at_peak.*",
               "categories_at_peak.*", "saved_activations_bytes", "saved_activations_per_layer_bytes",
               "saved_activations_by_component.*",
               "flops.*", "flops_matmul.*", "adamw_flops_per_param", "model_states.*", "model_states_bytes",
               "fixed_memory_bytes", "per_batch_memory_bytes", "micro_batches.**", "warmup.**", "allocator.**")


def is_figure_key(key: str) -> bool:
    """Whether a dotted key is one of FIGURE_KEYS."""
    parts = key.split(".")
    for pattern in FIGURE_KEYS:
        expected = pattern.split(".")
        if expected[-1] == "**" and len(parts) >= len(expected) and parts[:len(expected) - 1] == expected[:-1]:
            return True
        if len(parts) == len(expected) and all(e in ("*", p) for e, p in zip(expected, parts)):
            return True
    return False


MODEL_STATES = ("parameters", "gradients", "optimizer_state")


def with_model_states(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures with model_states.* and model_states_bytes derived from the optimizer step's categories at
    its peak, where they are given and model_states is not (a set that predicts model states directly keeps its
    own)."""
    at_peak = figures.get("phases", {}).get("optimizer", {}).get("categories_at_peak")
    if "model_states" in figures or not at_peak:
        return figures
    states = {category: at_peak[category] for category in MODEL_STATES}
    return {**figures, "model_states": states, "model_states_bytes": sum(states.values())}


def common_keys(predicted: dict[str, Any], measured: dict[str, Any]) -> Iterator[str]:
    """Dotted keys present in both, in the measurement's order: the terms a formula set can be graded on."""
    flat_predicted = flatten(predicted)
    for key, value in flatten(measured).items():
        if key in flat_predicted and isinstance(value, (int, float)) and not isinstance(value, bool):
            yield key


def model_flops(flops: dict[str, Any]) -> int:
    """FLOPs of one step as MFU counts them (PaLM, appendix B): every phase, less checkpointing's recomputation."""
    return hardware_flops(flops) - flops.get("recompute", 0)


def hardware_flops(flops: dict[str, Any]) -> int:
    """FLOPs the hardware runs in one step: every phase, recomputation included."""
    return sum(flops[phase] for phase in ("forward", "backward", "optimizer"))


WINDOW_KEYS = ("peak_bytes", "start_bytes", "end_bytes")


def combine_windows(per_window: list, micro_batches: int | None = None) -> dict[str, Any]:
    """Phase figures from the figures of each window of a step, [(phase, micro-batch or None, figures)] in step
    order (forward and backward once per micro-batch, then the optimizer): a phase's peak is its highest window
    (the first on ties), its start its first window's, its end its last's; with k > 1 micro-batches, micro_batch
    is the one holding the peak and micro_batches.<i> every micro-batch's peak, start and end. The last micro-batch
    given stands for the later ones up to `micro_batches` (the exact model gives micro-batches 1 and 2: the others
    repeat 2). Values are numbers (a measurement) or numpy arrays (the exact model, elementwise)."""
    given = max((index or 1 for _, index, _ in per_window), default=1)
    k = micro_batches or given
    phases: dict[str, dict[str, Any]] = {}
    by_micro_batch: dict[str, dict[str, dict[str, Any]]] = {}
    for phase, index, figures in per_window:
        current = phases.get(phase)
        own = dict(figures, micro_batch=index + 0 * figures["peak_bytes"]) if k > 1 and index else dict(figures)
        if current is None:
            phases[phase] = own
        else:
            chosen = _pick(figures["peak_bytes"] > current["peak_bytes"], own, current)
            phases[phase] = dict(chosen, start_bytes=current["start_bytes"], end_bytes=figures["end_bytes"])
        if k > 1 and index:
            for number in (range(index, k + 1) if index == given else (index,)):
                by_micro_batch.setdefault(str(number), {})[phase] = {key: figures[key] for key in WINDOW_KEYS}
    result: dict[str, Any] = {"phases": phases}
    if by_micro_batch:
        result["micro_batches"] = by_micro_batch
    return result


def _pick(higher, chosen: dict, other: dict) -> dict:
    """chosen where higher holds, else other: a plain choice for numbers, elementwise for arrays."""
    if isinstance(higher, bool):
        return chosen if higher else other
    return {key: _pick(higher, chosen[key], other[key]) if isinstance(chosen[key], dict)
            else np.where(higher, chosen[key], other[key]) for key in chosen}

