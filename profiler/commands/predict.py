"""`predict`: every formula set's figures for one configuration, side by side (rows: figures, columns: sets)."""
from __future__ import annotations

import argparse
import json

from analytic.figures import flatten
from analytic.formula_sets import predict
from profiler.commands.options import (add_config_arguments, add_formula_set_argument, config_from_args,
                                       load_formula_sets)
from profiler.reporting.tables import format_cell, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--sets", help="comma-separated formula sets, names or .py files (default: all)")
    add_formula_set_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")


def table(flat_by_set: dict[str, dict]) -> list[list[str]]:
    """Rows of cells: a header, then one row per figure key in first-seen order."""
    keys: dict[str, None] = {}
    for flat in flat_by_set.values():
        keys.update(dict.fromkeys(flat))
    rows = [["figure", *flat_by_set]]
    rows += [[key, *(format_cell(key, flat.get(key)) for flat in flat_by_set.values())] for key in keys]
    return rows


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, sharded=True)
    load_formula_sets(args)
    names = [name.strip() for name in args.sets.split(",")] if args.sets else None
    predictions = predict(config, args.batch_size, optimizer=args.optimizer, names=names)
    if args.json:
        print(json.dumps({"config": config.to_dict(), "batch_size": args.batch_size, "optimizer": args.optimizer,
                          "sets": predictions}, indent=2))
        return 0
    print(f"{config.name}: {config.setup_text(args.batch_size)}, AdamW {args.optimizer}"
          + (", rank 0" if config.shard != "none" else ""))
    print(render(table({name: flatten(figures) for name, figures in predictions.items()})))
    return 0
