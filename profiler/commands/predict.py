"""`predict`: every formula set's figures for one configuration, side by side (rows: figures, columns: sets)."""
from __future__ import annotations

import argparse
import json

from analytic.figures import flatten
from analytic.formula_sets import predict
from analytic.units import format_bytes, format_flops
from profiler.cli import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--sets", help="comma-separated formula sets (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")


def format_cell(key: str, value) -> str:
    """Bytes as GiB (GB), FLOPs with a prefix, other numbers with separators; '—' where a set has no figure."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if key.endswith("bytes") or key.startswith(("categories_at_peak.", "saved_activations_by_component.")):
        return f"{format_bytes(value, 'GiB')} ({format_bytes(value, 'GB')})"
    if key.startswith(("flops.", "flops_matmul.")):
        return format_flops(value)
    return f"{value:,}"


def table(flat_by_set: dict[str, dict]) -> list[list[str]]:
    """Rows of cells: a header, then one row per figure key in first-seen order."""
    keys: dict[str, None] = {}
    for flat in flat_by_set.values():
        keys.update(dict.fromkeys(flat))
    rows = [["figure", *flat_by_set]]
    rows += [[key, *(format_cell(key, flat.get(key)) for flat in flat_by_set.values())] for key in keys]
    return rows


def render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    names = [name.strip() for name in args.sets.split(",")] if args.sets else None
    predictions = predict(config, args.batch_size, optimizer=args.optimizer, names=names)
    if args.json:
        print(json.dumps({"config": config.to_dict(), "batch_size": args.batch_size, "optimizer": args.optimizer,
                          "sets": predictions}, indent=2))
        return 0
    print(f"{config.name}: batch {args.batch_size}, {config.dtype}, AdamW {args.optimizer}")
    print(render(table({name: flatten(figures) for name, figures in predictions.items()})))
    return 0
