"""A tracked step as a memory snapshot in the format of `torch.cuda.memory._snapshot()`, for PyTorch's memory_viz.

`python -m torch.cuda._memory_viz trace_plot FILE.pickle -o FILE.html` (or https://pytorch.org/memory_viz) opens
it as it opens a snapshot recorded on a GPU. The layout follows torch's own conversion of profiler events
(torch/cuda/_memory_viz.py, _profile_to_snapshot):
    segments        one segment per device, from address 0 to the end of the last allocation, its blocks in
                    address order: those live at the end (parameters, buffers, inputs, AdamW state) "active_allocated",
                    each {"address", "size", "requested_size", "state", "frames"}, and every gap between them one
                    "inactive" block, so that the blocks add up to the segment (memory_viz's `stats` checks it, and
                    its viewer places each block at the sum of the sizes before it)
    device_traces   [[event, ...]]: every allocation ("alloc") and free ("free_requested" then "free_completed")
                    from the model's construction on, each {"action", "addr", "size", "stream", "frames",
                    "category"}; frames name the phase of the step (warm-up or measured) and the aten op; a last
                    "snapshot" event (the moment it was taken) carries the category "unknown", which the viewer
                    expects among the categories when there are any (it fails to load a snapshot without it)
Sizes are the bytes the tracker counted (no allocator rounding, so replaying the trace gives the measured figures
byte for byte); addresses are made up (512-byte aligned, never reused), as only their identity matters here.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from profiler.measuring.tracker import ALLOC, Mark, StorageTracker

ALIGNMENT = 512


def phase_names(marks: dict[str, list[Mark]]) -> list[tuple[int, str]]:
    """(event index, "warmup forward 1" ...) at each mark, in order."""
    names = []
    for step, step_marks in marks.items():
        micro = 0
        for mark in step_marks:
            micro += mark.name == "forward"
            suffix = f" {micro}" if mark.name in ("forward", "backward") else ""
            names.append((mark.event_index, f"{step} {mark.name}{suffix}"))
    return names


def build_snapshot(tracker: StorageTracker, category_of: dict[int, str],
                   marks: dict[str, list[Mark]]) -> dict[str, Any]:
    """The snapshot of every event the tracker logged (module docstring)."""
    boundaries = phase_names(marks)
    address_of: dict[int, int] = {}
    live: dict[int, int] = {}  # sid -> bytes of the storages live after the last event
    next_address = 0
    events = []
    phase, position = "construction", 0
    for index, (sign, sid, nbytes) in enumerate(tracker.events):
        while position < len(boundaries) and boundaries[position][0] <= index:
            phase = boundaries[position][1]
            position += 1
        op_index = tracker.event_ops[index]
        op = tracker.ops[op_index - 1] if 0 < op_index <= len(tracker.ops) else None
        frames = [{"filename": phase, "line": op_index, "name": str(op) if op is not None else "(outside an op)"}]
        if sign == ALLOC:
            address_of[sid] = next_address
            next_address += -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
        common = {"addr": address_of[sid], "size": nbytes, "stream": 0, "frames": frames,
                  "category": category_of.get(sid, "temporaries")}
        if sign == ALLOC:
            live[sid] = nbytes
            events.append({"action": "alloc", **common})
        else:
            live.pop(sid, None)
            events += [{"action": "free_requested", **common}, {"action": "free_completed", **common}]
    segment = {"device": 0, "address": 0, "total_size": next_address, "allocated_size": sum(live.values()),
               "active_size": sum(live.values()), "requested_size": sum(live.values()), "stream": 0,
               "segment_type": "large",
               "blocks": tiled_blocks([(address_of[sid], nbytes) for sid, nbytes in live.items()], next_address)}
    events.append({"action": "snapshot", "addr": 0, "size": 0, "stream": 0, "category": "unknown",
                   "frames": [{"filename": "end", "line": len(tracker.ops), "name": "(the snapshot)"}]})
    return {"segments": [segment], "device_traces": [events]}


def tiled_blocks(live: list[tuple[int, int]], total_size: int) -> list[dict[str, Any]]:
    """The segment's blocks from address 0 to total_size, in order, as the allocator lists them: each live
    (address, bytes) an "active_allocated" block, every gap between them an "inactive" one (memory_viz
    places a block at the sum of the sizes before it, and `stats` checks that they add up to the segment)."""
    blocks, at = [], 0
    for address, nbytes in sorted(live):
        if address > at:
            blocks.append({"address": at, "size": address - at, "requested_size": 0, "state": "inactive",
                           "frames": []})
        blocks.append({"address": address, "size": nbytes, "requested_size": nbytes, "state": "active_allocated",
                       "frames": []})
        at = address + nbytes
    if total_size > at:
        blocks.append({"address": at, "size": total_size - at, "requested_size": 0, "state": "inactive",
                       "frames": []})
    return blocks


def write_snapshot(snapshot: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "wb") as file:
        pickle.dump(snapshot, file)
    return path
