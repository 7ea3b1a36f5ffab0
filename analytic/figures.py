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
    flops.recompute                          the part of flops.backward that checkpointing spends re-running
                                             blocks' forward (0 without checkpointing)
    flops_matmul.forward / backward          matmul FLOPs alone (what FlopCounterMode counts)
    adamw_flops_per_param                    optimizer FLOPs / params
    warmup.peak_bytes, warmup.phases...      the first step (optimizer state created inside it)

Phases, categories and components are the names in model.vocabulary.
"""
from __future__ import annotations

from typing import Any, Iterator


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
