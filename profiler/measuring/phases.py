"""The phases of one training step from train_step's marks, and the step's phase figures from its windows'.

train_step marks "forward" and "backward" once per micro-batch, then "optimizer" and "end". A window runs from
one mark to the next: windows() names each by (phase, micro-batch 1..k; None for the optimizer). combine()
turns per-window figures (peak_bytes, start_bytes, end_bytes and whatever else a backend measures) into the
figures of analytic.figures:
    phases.<phase>                 the highest of the phase's windows (the first on ties), with start_bytes of
                                   its first window and end_bytes of its last; with k > 1, micro_batch: the
                                   micro-batch that holds the phase's peak
    micro_batches.<i>.<phase>      with k > 1: peak_bytes, start_bytes and end_bytes of micro-batch i
    peak_bytes, peak_phase         the highest phase (the first on ties)
Both backends (the storage tracker on meta and CPU, the allocator's statistics on CUDA) cut phases here; the rule
itself is analytic.figures.combine_windows, which the exact model applies to its arrays too.
"""
from __future__ import annotations

from typing import Any

from analytic.figures import combine_windows
from model.vocabulary import PHASES

MICRO_BATCH_PHASES = ("forward", "backward")


def windows(names: list[str]) -> list[tuple[str, int | None]]:
    """(phase, micro-batch) of each window between consecutive marks (the last mark, "end", opens none)."""
    expected_tail = ["optimizer", "end"]
    if names[-2:] != expected_tail or not names[:-2] or len(names[:-2]) % 2 or any(
            name != MICRO_BATCH_PHASES[i % 2] for i, name in enumerate(names[:-2])):
        raise ValueError(f"marks {names} are not (forward, backward) × k, optimizer, end")
    return [(name, i // 2 + 1 if name in MICRO_BATCH_PHASES else None) for i, name in enumerate(names[:-1])]


def combine(per_window: list[tuple[str, int | None, dict[str, Any]]]) -> dict[str, Any]:
    """Phase figures (module docstring) from [(phase, micro-batch, figures of that window)] in step order."""
    result = combine_windows(per_window)
    phases = result["phases"]
    peak_phase = max(PHASES, key=lambda phase: (phases[phase]["peak_bytes"], -PHASES.index(phase)))
    figures = {"peak_bytes": phases[peak_phase]["peak_bytes"], "peak_phase": peak_phase,
               "phases": {phase: phases[phase] for phase in PHASES}}
    if "micro_batches" in result:
        figures["micro_batches"] = result["micro_batches"]
    return figures
