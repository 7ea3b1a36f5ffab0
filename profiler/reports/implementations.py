"""The implementations table: one model as several implementations write it (the built-in block, Hugging Face's,
a user's), each measured, set beside the built-in block of the same setup and graded by every formula set that
describes it. From a sweep's rows (a grid whose points set `source`, examples/implementations.toml); no torch.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import sympy as sp

from analytic.units import format_bytes, relative_error
from model.config import BUILTIN
from profiler.reports.tables import relative_cell

HF_CLASSES = {"hf:gpt2": "GPT2LMHeadModel", "hf:llama": "LlamaForCausalLM"}
NUMBER_COLUMNS = ("params", "peak", "saved activations", "max batch")


def implementation(config: dict[str, Any]) -> str:
    """'ours (gpt2 block)', 'Hugging Face GPT2LMHeadModel', or the user's FILE.py:NAME; with the user's optimizer
    class where one is given ('+ its AdamW' where it comes from the model's file)."""
    source = config.get("source", BUILTIN)
    if source == BUILTIN:
        name = f"ours ({config['arch']} block)"
    elif source.startswith("hf:"):
        name = f"Hugging Face {HF_CLASSES.get(source, source)}"
    else:
        name = source
    optimizer = config.get("optimizer_class")
    if not optimizer:
        return name
    where, _, class_name = optimizer.rpartition(":")
    return f"{name} + its {class_name}" if source.startswith(where + ":") else f"{name} + {optimizer}"


def setup(config: dict[str, Any]) -> str:
    """'float32 · explicit': the precision and the attention option (how a model that calls SDPA runs it)."""
    return f"{config['dtype']} · {config['attention']}"


def same_step(row: dict[str, Any]) -> tuple:
    """What a row shares with its built-in counterpart: everything but the implementation (source, optimizer
    class) and the model's name."""
    ignored = ("source", "optimizer_class", "name")
    return (tuple(sorted((key, value) for key, value in row["config"].items() if key not in ignored)),
            row["batch_size"], row["optimizer"])


def implementations_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per measured point, in the sweep's order: model (the point's name), implementation, setup,
    parameters, peak and saved activations at the point's batch, the peak's difference from the built-in block's
    at the same step (None where the sweep has no built-in point there), the largest batch in the sweep's budget
    (measured) and the relative error of the peak of every formula set that describes the point (the rows carry
    "predicted": profiler.reports.report.with_predictions)."""
    rows = [row for row in rows if row.get("outcome") == "ok"]
    ours = {same_step(row): row["measured"]["peak_bytes"] for row in rows
            if row["config"].get("source", BUILTIN) == BUILTIN and not row["config"].get("optimizer_class")}
    records = []
    for row in rows:
        measured = row["measured"]
        peak = measured["peak_bytes"]
        builtin = ours.get(same_step(row))
        record = {"model": row["config"]["name"], "implementation": implementation(row["config"]),
                  "setup": setup(row["config"]), "batch": row["batch_size"], "params": measured["params"],
                  "peak": peak, "saved activations": measured["saved_activations_bytes"],
                  "peak vs ours": None if builtin is None else relative_error(peak, builtin),
                  "max batch": (row.get("max_batch") or {}).get("measured")}
        for set_name, figures in row.get("predicted", {}).items():
            if figures.get("peak_bytes") is not None:
                record[set_name] = relative_error(figures["peak_bytes"], peak)
        records.append(record)
    return pd.DataFrame.from_records(records)


PER_LAYER = "saved_activations_per_layer_bytes"


def formula_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """derived_per_layer's records as a table: implementation, setup, saved activations per layer, vs ours (— where
    the sweep has no built-in point at the same step)."""
    from analytic.exact.formula import readable

    return pd.DataFrame([{"implementation": record["implementation"], "setup": record["setup"],
                          "saved activations per layer": readable(record["per_layer"]),
                          "vs ours": "—" if record["vs_ours"] is None else readable(record["vs_ours"])}
                         for record in derived_per_layer(rows)])


def derived_per_layer(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per implementation and setup of a user's or Hugging Face model in the sweep: its saved activations
    per layer as the exact set derives them from its code ("per_layer": B >= 2, H >= 2; analytic.exact.ExactSet.
    model_programs, where the registry's exact set derives a model's code: the CLI's) and the difference from the
    built-in block's at the same step ("vs_ours", analytic.exact.formula; None where the sweep has no such point),
    sympy expressions in B, T, D, H, F, V; none where none is derived."""
    from analytic.exact.formula import formula_key, formulas
    from analytic.exact.model_programs import own_code
    from analytic.formula_sets import exact_set
    from model.spec import StepSpec

    exact = exact_set()
    if not hasattr(exact, "model_programs"):
        return []
    rows = [row for row in rows if row.get("outcome") == "ok"]
    ours = {same_step(row): StepSpec.from_row(row) for row in rows
            if row["config"].get("source", BUILTIN) == BUILTIN and not row["config"].get("optimizer_class")}
    records, seen = [], set()
    for row in rows:
        spec = StepSpec.from_row(row)
        key = (implementation(row["config"]), setup(row["config"]))
        if not own_code(spec) or key in seen:
            continue
        seen.add(key)
        general = spec.replace(batch_size=2, micro_batches=1)
        derived = exact.model_programs(general)
        if derived is None:
            continue
        mine = derived.formulas()[PER_LAYER]
        builtin = ours.get(same_step(row))
        theirs = None if builtin is None else formulas(formula_key(builtin, at_batch=False),
                                                       exact.programs)[PER_LAYER]
        records.append({"implementation": key[0], "setup": key[1], "per_layer": mine,
                        "vs_ours": None if theirs is None else sp.expand(mine - theirs)})
    return records


def displayed(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: bytes in GB (10⁹), relative differences as signed percentages (the peak's against ours
    to 0.01 %), — where there is none."""
    shown = table.astype(object).copy()
    sets = [column for column in table.columns if column not in (
        "model", "implementation", "setup", "batch", "peak vs ours", *NUMBER_COLUMNS)]
    for column in ("peak", "saved activations"):
        shown[column] = [format_bytes(value, "GB", 1) for value in table[column]]
    shown["params"] = [f"{value / 1e6:,.0f} M" for value in table["params"]]
    shown["max batch"] = ["—" if pd.isna(value) else str(int(value)) for value in table["max batch"]]
    shown["peak vs ours"] = ["—" if pd.isna(value) else f"{value:+.2%}" for value in table["peak vs ours"]]
    for column in sets:
        shown[column] = ["—" if pd.isna(value) else relative_cell(value) for value in table[column]]
    return shown


def has_implementations(rows: list[dict[str, Any]]) -> bool:
    """Whether a sweep measured a model other than the built-in one (its report then shows the table)."""
    return any(row.get("config", {}).get("source", BUILTIN) != BUILTIN for row in rows)
