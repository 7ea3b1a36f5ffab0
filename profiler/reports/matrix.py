"""Which formula is right where: formula set × setup, median and worst error per group of terms, and the
reconciliation (the bytes each set misses or over-counts, by category and component, largest first).

A setup is what a published formula claims to describe: the block (arch), the precision, the attention kernel,
checkpointing and micro-batches. Every table is a pandas DataFrame of numbers; report.py formats them.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from analytic.units import UNITS, format_bytes
from profiler.reports.compare import reconcile
from profiler.reports.tables import percent_cell

# Groups of terms graded in the matrix: a name and the terms pooled under it.
TERM_GROUPS = {"peak": ("peak_bytes",),
               "saved activations": ("saved_activations_bytes",),
               "saved per layer": ("saved_activations_per_layer_bytes",),
               "model states": ("model_states_bytes",),
               "matmul FLOPs": ("flops_matmul.forward", "flops_matmul.backward"),
               "FLOPs": ("flops.forward", "flops.backward", "flops.optimizer")}
PRECISION = {("float32", "none"): "fp32", ("bfloat16", "none"): "bf16", ("float32", "bfloat16"): "amp bf16"}
RECONCILED_ITEMS = 4  # differences listed per set and setup


def setup_label(config: dict[str, Any]) -> str:
    """'gpt2 · amp bf16 · sdpa-flash · full ckpt · 2 micro-batches' (the last two only when used)."""
    parts = [config.get("arch", "reference"),
             PRECISION.get((config.get("dtype"), config.get("autocast", "none")), config.get("dtype")),
             config.get("attention", "explicit")]
    if config.get("checkpointing", "none") != "none":
        parts.append(f"{config['checkpointing']} ckpt")
    if config.get("micro_batches", 1) > 1:
        parts.append(f"{config['micro_batches']} micro-batches")
    return " · ".join(parts)


def matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per formula set × setup × group of terms it predicts there, with the number of points
    and the median and worst |relative error|."""
    table = table.assign(abs_error=table["relative_error"].abs())
    records = []
    for group_name, terms in TERM_GROUPS.items():
        graded = table[table["term"].isin(terms)]
        for (set_name, setup), cell in graded.groupby(["formula_set", "setup"], sort=False):
            records.append({"formula set": set_name, "setup": setup, "terms": group_name,
                            "points": cell["key"].nunique(), "median": cell["abs_error"].median(),
                            "worst": cell["abs_error"].max()})
    return pd.DataFrame.from_records(records, columns=["formula set", "setup", "terms", "points", "median", "worst"])


def matrix_view(long: pd.DataFrame, group: str) -> pd.DataFrame:
    """Setups × formula sets for one group of terms: 'median / worst' where the set is graded, '—' elsewhere."""
    cells = long[long["terms"] == group]
    if cells.empty:
        return pd.DataFrame()
    text = cells.assign(cell=[f"{percent_cell(m)} / {percent_cell(w)}"
                              for m, w in zip(cells["median"], cells["worst"])])
    view = text.pivot(index="setup", columns="formula set", values="cell")
    view = view[list(dict.fromkeys(cells["formula set"]))].fillna("—")
    view.columns.name = None
    return view.reset_index()


def reconciliation(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """For each formula set and setup it is graded on: at the setup's point with the largest measured peak, the
    set's peak error and the RECONCILED_ITEMS largest differences (reconcile: over-counts > 0, misses < 0)."""
    largest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("outcome") != "ok":
            continue
        setup = setup_label(row["config"])
        if setup not in largest or row["measured"]["peak_bytes"] > largest[setup]["measured"]["peak_bytes"]:
            largest[setup] = row
    records = []
    for setup, row in largest.items():
        for set_name, figures in row.get("predicted", {}).items():
            items = reconcile(figures, row["measured"])
            if not items:
                continue
            peak = figures.get("peak_bytes")
            records.append({"formula set": set_name, "setup": setup, "point": row.get("label", row["key"]),
                            "peak error": (peak - row["measured"]["peak_bytes"]) / row["measured"]["peak_bytes"]
                            if peak is not None else None,
                            "largest differences": "; ".join(describe(item) for item in items[:RECONCILED_ITEMS])})
    return pd.DataFrame.from_records(records, columns=["formula set", "setup", "point", "peak error",
                                                       "largest differences"])


def term_words(term: str) -> str:
    """'categories_at_peak.temporaries' -> 'temporaries at the peak', and so on."""
    family, _, name = term.partition(".")
    name = name.replace("_", " ")
    return {"categories_at_peak": f"{name} at the peak", "saved_activations_by_component": f"saved {name}",
            "model_states": f"{name} (model states)"}.get(family, term.replace("_", " ").replace(" bytes", ""))


def describe(item: dict[str, Any]) -> str:
    """'misses 3.1 GiB of temporaries at the peak' or 'over-counts saved scores by 1.2 GiB'."""
    size = abs(item["difference"])
    unit = next((unit for unit in ("GiB", "MiB", "KiB") if size >= UNITS[unit]), None)
    amount = format_bytes(size, unit) if unit else f"{size:,.0f} B"
    words = term_words(item["term"])
    if item["predicted"] == 0:
        return f"misses {words} ({amount})"
    if item["measured"] == 0:
        return f"counts {words}, where PyTorch holds none ({amount})"
    return f"{'over' if item['difference'] > 0 else 'under'}-counts {words} by {amount}"
