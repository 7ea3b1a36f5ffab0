"""`python -m profiler report DIR`: (re)write a sweep folder's results.csv, report.md, report.html and plots, with
every formula set's predictions made by today's code. It reads the folder and renders (profiler.reports, no torch);
with --simulate it first simulates on meta the CUDA points not yet in the folder's simulation.jsonl
(profiler.experiments.simulation, torch)."""
from __future__ import annotations

import argparse
from pathlib import Path

from analytic.units import DEFAULT_BUDGET
from profiler.commands.options import add_formula_set_argument, load_formula_sets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a sweep folder (holding results.jsonl)")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, help=f"memory for the max-batch table "
                                                                 f"(default {DEFAULT_BUDGET})")
    parser.add_argument("--simulate", action="store_true",
                        help="first simulate on meta, with the torch installed here, the CUDA points the folder's "
                             "simulation.jsonl lacks (the report sets each GPU point beside its simulation)")
    add_formula_set_argument(parser)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs no pandas
    from profiler.reports.report import write_report

    load_formula_sets(args)
    if args.simulate:
        from profiler.experiments.simulation import simulations
        from profiler.reports.results import read_results

        simulations(args.dir, read_results(args.dir))
    for path in write_report(args.dir, budget=args.budget):
        print(path)
    return 0
