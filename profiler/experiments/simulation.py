"""A CUDA sweep's points simulated on meta (profiler.reports.simulation sets them beside the GPU's figures).

The simulations are measurements of their own, made with the torch installed where they run (by `sweep` before it
writes the report, by `report --simulate`): appended to the folder's simulation.jsonl as they finish, keyed by the
point, so each point is simulated once.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from model.spec import StepSpec
from profiler.measuring.measure import measure
from profiler.reports.folder import claim
from profiler.reports.simulation import SIMULATION_FILE, cuda_rows, read_simulations

Simulate = Callable[[StepSpec], dict[str, Any]]


def simulate_on_meta(spec: StepSpec) -> dict[str, Any]:
    """The allocator model's phase peaks of the step measured on meta (measure(...).measured["allocator"])."""
    return measure(spec, "meta", count_flops=False).measured["allocator"]


def simulations(out_dir: str | Path, rows: list[dict[str, Any]], simulate: Simulate = simulate_on_meta,
                progress: bool = True) -> dict[str, dict[str, Any]]:
    """point key -> {"phases": {phase: {"peak_bytes"}}, "peak_bytes", "torch_version"} or {"outside": why}, for
    every CUDA row: read from out_dir/simulation.jsonl, the missing ones simulated and appended as they finish."""
    out_dir = Path(out_dir)
    path = out_dir / SIMULATION_FILE
    known = read_simulations(out_dir)
    todo = [row for row in cuda_rows(rows) if row["key"] not in known]
    if todo:
        claim(out_dir, [SIMULATION_FILE])
    for row in tqdm(todo, desc="simulating the GPU's points on meta", unit="point", file=sys.stderr,
                    disable=None if progress else True):
        entry: dict[str, Any] = {"key": row["key"], "torch_version": torch.__version__}
        if row["optimizer"] == "fused":
            entry["outside"] = "fused AdamW does not run on meta"
        else:
            entry.update(simulate(StepSpec.from_row(row)))
        with path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        known[row["key"]] = entry
    return known
