"""`python -m profiler report DIR`: (re)write a sweep folder's results.csv, report.md, report.html and plots."""
from __future__ import annotations

import argparse
from pathlib import Path

from profiler.report import DEFAULT_BUDGET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a sweep folder (holding results.jsonl)")
    parser.add_argument("--repredict", action="store_true",
                        help="recompute every formula set's predictions with today's code")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, help=f"memory for the max-batch table "
                                                                 f"(default {DEFAULT_BUDGET})")


def run(args: argparse.Namespace) -> int:
    from profiler.report import write_report

    for path in write_report(args.dir, recompute_predictions=args.repredict, budget=args.budget):
        print(path)
    return 0
