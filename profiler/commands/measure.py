"""`measure`: run one training step (meta, cpu or cuda) and print what was measured beside every formula set's
prediction, with the relative error of each term."""
from __future__ import annotations

import argparse
import json

import pandas as pd

from profiler.cli import add_config_arguments, config_from_args
from profiler.compare import comparison_rows
from profiler.measure import DEVICES, measure
from profiler.tables import format_cell, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--device", choices=DEVICES, default="meta")
    parser.add_argument("--json", action="store_true", help="print one JSON document (Measurement.to_dict())")
    parser.add_argument("--all-terms", action="store_true", help="every term, not only the headline ones")


HEADLINE = ("peak_bytes", "phases.forward.peak_bytes", "phases.backward.peak_bytes", "phases.optimizer.peak_bytes",
            "saved_activations_bytes", "categories_at_peak.parameters", "categories_at_peak.gradients",
            "categories_at_peak.optimizer_state", "categories_at_peak.saved_activations", "flops.forward",
            "flops.backward", "flops.optimizer", "flops_matmul.forward", "params")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = measure(config, args.batch_size, args.device, args.optimizer).to_dict()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    rows = pd.DataFrame(comparison_rows(result["measured"], result["predicted"]))
    if not args.all_terms:
        rows = rows[rows.term.isin(HEADLINE)]
    table = rows.pivot(index="term", columns="formula_set", values=["predicted", "relative_error"])
    order = [term for term in HEADLINE if term in table.index] + [t for t in table.index if t not in HEADLINE]
    measured = rows.drop_duplicates("term").set_index("term")["measured"]
    lines = [f"{config.name}: batch {args.batch_size}, {config.dtype}, AdamW {args.optimizer}, measured on "
             f"{result['device_name']} (torch {result['torch_version']}); peak in the "
             f"{result['measured']['peak_phase']} phase", ""]
    sets = list(result["predicted"])
    rows = [["term", "measured", *sets]]
    for term in order:
        cells = [term, format_cell(term, measured[term])]
        for name in sets:
            predicted = table.loc[term, ("predicted", name)] if ("predicted", name) in table.columns else None
            cells.append("—" if predicted is None or pd.isna(predicted) else
                         f"{format_cell(term, predicted)} ({table.loc[term, ('relative_error', name)]:+.1%})")
        rows.append(cells)
    lines.append(render(rows))
    print("\n".join(lines))
    return 0
