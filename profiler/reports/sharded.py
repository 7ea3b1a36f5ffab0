"""A sweep's sharded points (FSDP2 or DDP, one rank each): what a rank holds at its peak, how many ranks a budget needs,
and the per-rank formulas (FSDP2's closed form, ZeRO stage 3) on its model states.

Tables of numbers from the rows' measurements and the formula sets' predictions (profiler.reports.report adds
them to the report as blocks); a plot of the rank's peak against the world size with the budget lines.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from analytic.figures import with_model_states
from analytic.units import parse_bytes, relative_error
from profiler.reports import plots, render
from profiler.reports.matrix import setup_label
from profiler.reports.tables import human_bytes, relative_cell

FSDP2_BUFFERS = ("unsharded_parameters", "all_gather_buffers", "unsharded_gradients", "reduce_scatter_buffers")
GRADED_SETS = ("fsdp2", "zero", "deepspeed")  # the per-rank sets, graded on the rank's model states


def sharded_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("outcome") == "ok" and row["config"].get("shard", "none") != "none"]


def _setup(config: dict[str, Any]) -> str:
    keep = "" if config.get("reshard_after_forward", True) else " · no reshard after forward"
    t = config.get("tensor_parallel", 1)
    tensor = "" if t == 1 else f" · TP {t}" + (" with SP" if config.get("sequence_parallel") else "")
    return f"{config['shard'].upper()} · {setup_label(config)}{keep}{tensor}"


def rank_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per sharded point: the rank's peak and phase, the exact set's error on the peak, what the rank
    holds there (its shards and state, saved activations, FSDP2's buffers), its model states measured, and each
    per-rank set's error on them."""
    records = []
    for row in sharded_rows(rows):
        measured = with_model_states(row["measured"])
        at_peak = measured["categories_at_peak"]
        record = {"model": row["config"]["name"], "setup": _setup(row["config"]),
                  "ranks": row["config"]["world_size"], "batch per rank": row["batch_size"],
                  "rank": measured.get("rank", 0), "peak": measured["peak_bytes"], "phase": measured["peak_phase"],
                  "exact peak error": _error(row, measured, "exact", "peak_bytes"),
                  "saved activations": at_peak["saved_activations"],
                  "FSDP2 buffers": sum(at_peak[name] for name in FSDP2_BUFFERS),
                  "model states": measured["model_states_bytes"]}
        for name in GRADED_SETS:
            record[f"{name} error"] = _error(row, measured, name, "model_states_bytes")
        records.append(record)
    return pd.DataFrame.from_records(records)


def _error(row: dict[str, Any], measured: dict[str, Any], name: str, key: str) -> float | None:
    """The relative error of set `name` on the figure `key` of the row's measurement; None where it predicts none."""
    predicted = row.get("predicted", {}).get(name, {}).get(key)
    return None if predicted is None else relative_error(predicted, measured[key])


def _shown(table: pd.DataFrame, byte_columns: tuple[str, ...], error_columns: list[str]) -> pd.DataFrame:
    """The table with those columns' bytes in human units and those errors signed ("—" where there is none)."""
    shown = table.copy()
    for column in byte_columns:
        shown[column] = shown[column].map(human_bytes)
    for column in error_columns:
        shown[column] = shown[column].map(lambda e: "—" if pd.isna(e) else relative_cell(e))
    return shown


def displayed(table: pd.DataFrame) -> pd.DataFrame:
    """rank_table with bytes in human units and signed errors, for reports and the README."""
    return _shown(table, ("peak", "saved activations", "FSDP2 buffers", "model states"),
                  ["exact peak error"] + [f"{name} error" for name in GRADED_SETS])


def ranks_needed(table: pd.DataFrame, budget_bytes: int) -> pd.DataFrame:
    """For each model, setup and batch per rank: the fewest ranks measured whose rank peak fits the budget, and the
    rank's peak there (— where no measured world size fits)."""
    records = []
    for (model, setup, batch), group in table.groupby(["model", "setup", "batch per rank"], sort=False):
        fitting = group[group["peak"] <= budget_bytes].sort_values("ranks")
        first = fitting.iloc[0] if not fitting.empty else None
        records.append({"model": model, "setup": setup, "batch per rank": batch,
                        "world sizes measured": ", ".join(map(str, sorted(group["ranks"]))),
                        "fewest ranks that fit": "—" if first is None else int(first["ranks"]),
                        "rank peak there": "—" if first is None else human_bytes(first["peak"])})
    return pd.DataFrame.from_records(records)


TP_GRADED = {"korthikanti": "saved_activations_per_layer_bytes", "megatron": "peak_bytes"}  # set: the figure graded


def tensor_parallel_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per FSDP2 point of a model, setup, world size and batch that the sweep measured with tensor
    parallelism (t = 1 included, as the baseline): t, sequence parallelism, the rank's peak and the exact set's
    error on it, its saved activations (per layer and in all, at the end of forward), its model states, and the
    error of each set of TP_GRADED on its figure where the set describes the point (Korthikanti et al.'s per-layer
    activations, Megatron-LM's peak)."""
    def group(config: dict[str, Any]) -> tuple:
        return (config["name"], setup_label(config), config["world_size"])

    ok = [row for row in sharded_rows(rows) if row["config"]["shard"] == "fsdp2"]
    parallel = {(group(row["config"]), row["batch_size"]) for row in ok if row["config"].get("tensor_parallel", 1) > 1}
    records = []
    for row in ok:
        config, measured = row["config"], with_model_states(row["measured"])
        if (group(config), row["batch_size"]) not in parallel:
            continue
        record = {"model": config["name"], "setup": setup_label(config), "ranks": config["world_size"],
                  "batch per rank": row["batch_size"], "t": config.get("tensor_parallel", 1),
                  "sequence parallel": "yes" if config.get("sequence_parallel") else "no",
                  "peak": measured["peak_bytes"],
                  "exact peak error": _error(row, measured, "exact", "peak_bytes"),
                  "saved activations per layer": measured["saved_activations_per_layer_bytes"],
                  "saved activations": measured["saved_activations_bytes"],
                  "model states": measured["model_states_bytes"]}
        for name, key in TP_GRADED.items():
            record[f"{name} error"] = _error(row, measured, name, key)
        records.append(record)
    return pd.DataFrame.from_records(records)


def displayed_tensor_parallel(table: pd.DataFrame) -> pd.DataFrame:
    """tensor_parallel_table with bytes in human units and signed errors."""
    return _shown(table, ("peak", "saved activations per layer", "saved activations", "model states"),
                  ["exact peak error"] + [f"{name} error" for name in TP_GRADED])


def sharded_blocks(rows: list[dict[str, Any]], budget: str) -> list[render.Block]:
    """The report's section on sharded points; nothing when the sweep has none."""
    table = rank_table(rows)
    if table.empty:
        return []
    budget_bytes = parse_bytes(budget)
    curves = {f"{model} · {setup} · batch {batch}": dict(zip(group["ranks"], group["peak"]))
              for (model, setup, batch), group in table.groupby(["model", "setup", "batch per rank"], sort=False)}
    return [render.Heading("Sharded steps: one rank of FSDP2 or DDP"),
            render.Text("Each point simulates one rank (the one that holds the most, rank 0) of an FSDP2 step, or of "
                        "DDP as FSDP2's engine runs it (torch's replicate: whole parameters, gradients all-reduced "
                        "block by block), on the fake process group: its peak and phase, and the error on the peak "
                        "of the exact set (its programs derived from traces of small ranks); at the peak, its saved "
                        "activations and FSDP2's "
                        "buffers (gathered parameters, all-gather and reduce-scatter buffers, unsharded "
                        "gradients); its model states (parameter and gradient shards and AdamW state, at the "
                        "optimizer step) and the error on them of FSDP2's closed form (`fsdp2`), of ZeRO stage 3's "
                        "16Ψ/N (`zero`) and of DeepSpeed's ZeRO-3 estimator, its largest layer plus 18Ψ/N "
                        "(`deepspeed`, FSDP2 only), the last two mixed precision only; under DDP ZeRO's baseline "
                        "16Ψ on every rank."),
            render.Table(displayed(table)),
            render.Heading(f"Ranks needed in {budget}", level=3),
            render.Text(f"The fewest measured ranks whose rank peak fits {budget} ({budget_bytes:,} bytes): model "
                        "states shrink as 1/N under FSDP2, not at all under DDP; the activations and the buffers of "
                        "one block do not."),
            render.Table(ranks_needed(table, budget_bytes)),
            render.Image("rank_peak.png", plots.rank_peak(curves, {budget: budget_bytes}),
                         "Peak of one rank against the world size, with the budget line"),
            *tensor_parallel_blocks(rows)]


def tensor_parallel_blocks(rows: list[dict[str, Any]]) -> list[render.Block]:
    """The report's section on tensor-parallel points; nothing when the sweep has none."""
    table = tensor_parallel_table(rows)
    if table.empty:
        return []
    return [render.Heading("Tensor parallelism: one rank of FSDP2's 2-D mesh", level=3),
            render.Text("Each model, setup and world size measured at t = 1 and with its blocks split over t ranks "
                        "(torchtitan's plan, fully_shard on the data-parallel dimension), with and without sequence "
                        "parallelism: the rank's peak and the exact set's error on it (its programs derived from "
                        "traces of small simulated ranks), its saved activations at the end of forward (per "
                        "layer and in all) and its model states; Korthikanti et al.'s Table 2 graded on the saved "
                        "activations per "
                        "layer and Megatron-LM's theoretical memory on the peak, where they describe the point "
                        "(Korthikanti: GPT-2's block with dropout in bf16; Megatron: amp-bf16 with a fused kernel, "
                        "one data-parallel rank). With sequence parallelism torch saves the all-gathered inputs of "
                        "the attention's and the MLP's first linears whole, where Megatron-LM keeps them split and "
                        "gathers them again in backward: 4·s·b·h·(1 − 1/t) bytes a layer more than Table 2 counts."),
            render.Table(displayed_tensor_parallel(table))]
