"""A CUDA sweep against its simulation on meta: is what CI checks without a GPU what the GPU allocates?

For every point measured on CUDA, the same step (config, batch, AdamW implementation) measured on meta and its
allocations replayed through the caching allocator's model (profiler.measuring.allocator: 512-byte rounding,
2 MiB and 20 MiB segments, block splitting), the view `measured["allocator"]` holds. Beside it stands what the
allocator counted on the GPU less the run's baseline (memory held before the build plus cuBLAS's workspaces,
profiler.measuring.cuda), phase by phase, and the allocator's reserved peak over its allocated peak (what
fragmentation and cached free blocks add, which a budget emulated on the GPU counts and the simulation does not).

The simulations are read from the folder's simulation.jsonl, keyed by the point, as profiler.experiments.simulation
writes them (`sweep`, `report --simulate`); a point not in it is shown as not simulated.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from model.vocabulary import PHASES
from profiler.reports import render
from profiler.reports.tables import human_bytes

SIMULATION_FILE = "simulation.jsonl"


def read_simulations(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """point key -> {"phases": {phase: {"peak_bytes"}}, "peak_bytes", "torch_version"} or {"outside": why}: the
    entries of out_dir/simulation.jsonl (none where there is no such file)."""
    path = Path(out_dir) / SIMULATION_FILE
    if not path.exists():
        return {}
    return {entry["key"]: entry for entry in map(json.loads, filter(str.strip, path.read_text().splitlines()))}


def cuda_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows measured on CUDA (the points a simulation stands beside)."""
    return [row for row in rows if row.get("outcome") == "ok" and row.get("device") == "cuda"]


def against_simulation(rows: list[dict[str, Any]], simulated: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per CUDA point: the step's peak on the GPU less the baseline, the simulated peak, their difference
    in bytes and relative to the simulation, the worst phase's relative difference, and reserved / allocated."""
    records = []
    for row in cuda_rows(rows):
        entry = simulated.get(row["key"], {"outside": "not simulated"})
        measured = row["measured"]
        baseline = measured["baseline_bytes"]
        on_gpu = {phase: measured["phases"][phase]["peak_bytes"] - baseline for phase in PHASES}
        gpu_peak = max(on_gpu.values())
        reserved = max(measured["phases"][phase]["reserved_peak_bytes"] for phase in PHASES)
        record = {"point": row["label"], "optimizer": row["optimizer"], "peak on the GPU": gpu_peak,
                  "simulated on meta": None, "difference": None, "relative": None, "worst phase": None,
                  "reserved / allocated": reserved / measured["peak_bytes"], "outside": entry.get("outside")}
        if "outside" not in entry:
            simulated_phases = {phase: entry["phases"][phase]["peak_bytes"] for phase in PHASES}
            relative = {phase: (on_gpu[phase] - simulated_phases[phase]) / simulated_phases[phase]
                        for phase in PHASES}
            worst = max(relative, key=lambda phase: abs(relative[phase]))
            difference = gpu_peak - entry["peak_bytes"]
            record.update({"simulated on meta": entry["peak_bytes"], "difference": difference,
                           "relative": difference / entry["peak_bytes"], "worst phase": (worst, relative[worst])})
        records.append(record)
    return pd.DataFrame(records)


def summary(table: pd.DataFrame) -> str:
    """One sentence: over how many points, the median and worst relative difference of the peak and of any
    phase, and the largest reserved / allocated."""
    compared = table.dropna(subset=["relative"])
    if compared.empty:
        return "No point could be simulated."
    peak = compared["relative"].abs()
    phases = compared["worst phase"].map(lambda worst: abs(worst[1]))
    exact = int((compared["difference"] == 0).sum())
    return (f"Over {len(compared)} points: the GPU's peak less its baseline is within {peak.median():.2%} "
            f"(median) and {peak.max():.2%} (worst) of the simulation on meta, every phase within {phases.max():.2%};"
            f" {exact} to the byte. Reserved over allocated at the peak: up to "
            f"{table['reserved / allocated'].max():.3f}.")


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The table with bytes, percentages and the worst phase as text ("—" where a point was not simulated)."""
    shown = pd.DataFrame({
        "point": table["point"],
        "AdamW": table["optimizer"],
        "peak on the GPU": table["peak on the GPU"].map(human_bytes),
        "simulated on meta": table["simulated on meta"].map(lambda v: "—" if pd.isna(v) else human_bytes(v)),
        "difference": [("— (" + why + ")") if isinstance(why, str) else f"{difference / 2**20:+,.1f} MiB"
                       for difference, why in zip(table["difference"], table["outside"])],
        "relative": table["relative"].map(lambda v: "—" if pd.isna(v) else f"{v:+.2%}"),
        "worst phase": table["worst phase"].map(lambda w: f"{w[0]} {w[1]:+.2%}" if isinstance(w, tuple) else "—"),
        "reserved / allocated": table["reserved / allocated"].map(lambda v: f"{v:.3f}"),
    })
    return shown


def simulation_blocks(out_dir: Path, rows: list[dict[str, Any]]) -> list[render.Block]:
    """The report's section for a sweep with CUDA points (none without)."""
    if not cuda_rows(rows):
        return []
    simulated = read_simulations(out_dir)
    table = against_simulation(rows, simulated)
    versions = ", ".join(sorted({entry["torch_version"] for entry in simulated.values()}))
    return [render.Heading("The GPU against its simulation on meta"),
            render.Text("What CI checks without a GPU is the step simulated on meta: the same step's allocations "
                        "replayed through the caching allocator's model (512-byte rounding, segments, block "
                        "splitting). Here each point measured on the GPU stands beside it: the allocator's "
                        "peak less the baseline (memory held before the build, cuBLAS workspaces), the simulated "
                        f"peak (made where this report was rendered, with torch {versions}; simulation.jsonl), their "
                        "difference, the phase that differs most, and the reserved peak over the allocated one "
                        "(fragmentation and cached blocks, which a budget on a real card also pays). "
                        + summary(table)),
            render.Table(display(table))]
