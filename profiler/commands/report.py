"""`python -m profiler report DIR`: (re)write a sweep folder's results.csv, report.md, report.html and plots, with
every formula set's predictions made by today's code."""
from __future__ import annotations

import argparse
from pathlib import Path

from analytic.units import DEFAULT_BUDGET
from profiler.commands.options import add_formula_set_argument, load_formula_sets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a sweep folder (holding results.jsonl)")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, help=f"memory for the max-batch table "
                                                                 f"(default {DEFAULT_BUDGET})")
    add_formula_set_argument(parser)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs neither torch nor pandas
    from profiler.reporting.report import write_report

    load_formula_sets(args)
    for path in write_report(args.dir, budget=args.budget):
        print(path)
    return 0
