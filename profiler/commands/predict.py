"""`predict`: every formula set's figures for one configuration, side by side (rows: figures, columns: sets)."""
from __future__ import annotations

import argparse
import json

from analytic.figures import flatten
from analytic.formula_sets import describing, formula_sets, predict
from profiler.commands.options import (add_config_arguments, add_formula_set_argument, load_formula_sets,
                                       spec_from_args)
from profiler.reports.tables import HEADLINE, SHARDED_HEADLINE, WIDTH, fit_width, format_cell, no_answer, wrapped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--sets", help="comma-separated formula sets, names or .py files (default: all)")
    add_formula_set_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--all-terms", action="store_true", help="every figure, not only the headline ones")
    parser.add_argument("--wide", action="store_true", help="one table however wide (default: tables of 120 columns)")


def table(flat_by_set: dict[str, dict], keys: tuple[str, ...] | None = None, width: int | None = WIDTH) -> str:
    """The figures (rows: `keys`, default every figure in first-seen order) of each set (columns), in tables that
    fit `width` characters; a set with none of the figures is left out."""
    if keys is None:
        keys = tuple(dict.fromkeys(key for flat in flat_by_set.values() for key in flat))
    columns = {name: [format_cell(key, flat.get(key)) for key in keys] for name, flat in flat_by_set.items()
               if any(key in flat for key in keys)}
    return fit_width([["figure", *keys]], columns, width)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args, sharded=True)
    load_formula_sets(args)
    names = [name.strip() for name in args.sets.split(",")] if args.sets else None
    answering = describing(spec, names)
    silent = [name for name in formula_sets(names) if name not in answering]
    predictions = predict(spec, names=answering)
    sharded = spec.setup.shard != "none"
    if args.json:
        print(json.dumps({"config": spec.flat(), "batch_size": spec.batch_size, "optimizer": spec.setup.optimizer,
                          "sets": predictions, "not_describing": silent}, indent=2))
        return 0
    print(wrapped(f"{spec.model.name}: {spec.setup_text()}, {spec.setup.optimizer_text}"
                  + (", rank 0" if sharded else "")))
    headline = HEADLINE + (SHARDED_HEADLINE if sharded else ())
    by_set = {name: flatten(predictions[name]) for name in sorted(predictions, key=lambda name: name != "exact")}
    print(table(by_set, None if args.all_terms else headline, None if args.wide else WIDTH))
    if silent:
        print(no_answer(silent))
    return 0
