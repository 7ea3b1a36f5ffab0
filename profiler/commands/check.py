"""`python -m profiler check`: the gate. Measure a grid on meta and fail if a formula set misses any term it
predicts by more than the tolerance (relative)."""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from analytic.formula_sets import formula_sets, is_path
from profiler.commands.options import add_allow_long_argument, check_points
from profiler.errors import UsageError
from profiler.reports.tables import WIDTH, fit_width, format_cell


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", default="ci", help="a shipped grid (default ci) or a path to a .toml file")
    parser.add_argument("--tolerance", type=float, default=0.001,
                        help="largest |predicted - measured| / measured allowed (default 0.001)")
    parser.add_argument("--formula-set", default="exact",
                        help="the formula set to gate on: a name or your own .py file (default exact)")
    parser.add_argument("--out", type=Path, help="keep (and resume) the results here instead of a temp folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (ok, formula_set, tolerance, grid, points, misses); same exit "
                             "code")
    add_allow_long_argument(parser)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs neither torch nor pandas
    import torch

    from analytic.exact.versions import unverified_notice
    from profiler.experiments.grid import load_grid
    from profiler.experiments.sweep import run_sweep
    from profiler.reports.report import misses
    from profiler.reports.results import read_results

    if not math.isfinite(args.tolerance) or args.tolerance < 0:  # nan compares false with everything: no gate
        raise UsageError(f"--tolerance must be a finite non-negative number, got {args.tolerance}")
    if not is_path(args.formula_set) and args.formula_set not in formula_sets():
        raise UsageError(f"formula set {args.formula_set!r} does not exist; known: {', '.join(formula_sets())}")
    name = next(iter(formula_sets([args.formula_set])))  # a file is loaded (and checked) before measuring
    grid = load_grid(args.grid)
    check_points(grid, "meta", args.allow_long)
    with tempfile.TemporaryDirectory(prefix="profiler-check-") as scratch:
        out = args.out or Path(scratch)
        run_sweep(grid, out, "meta", progress=not args.quiet)
        rows = read_results(out)
        off = misses(rows, name, args.tolerance)
    notice = unverified_notice(torch.__version__) if name == "exact" else None
    if args.json:
        print(json.dumps({"ok": off.empty, "formula_set": name, "tolerance": args.tolerance, "grid": grid.name,
                          "points": len(rows), "device": "meta", "notice": notice,
                          "misses": off.to_dict(orient="records")}, indent=2, default=str))
        return 0 if off.empty else 1
    if notice:
        print(notice)
    if off.empty:
        print(f"ok: formula set {name} is within {args.tolerance:g} of every measured term it "
              f"predicts at all {len(rows)} points of grid {grid.name}")
        return 0
    print(f"FAIL: formula set {name} misses {len(off)} term(s) by more than {args.tolerance:g} "
          f"(grid {grid.name}, meta):")
    print(misses_table(off))
    sys.stdout.flush()
    return 1


def misses_table(off) -> str:
    """The misses within 120 columns, in human units: point and term on every part, the relative error first (a
    point that failed to measure: its outcome as the term, its error as the measurement)."""
    def cells(column: str) -> list[str]:
        return [format_cell(term, None if value != value else value) for term, value in zip(off["term"], off[column])]

    errors = ["" if error != error else error for error in off["relative error"]]
    return fit_width([["point", *off["point"]], ["term", *off["term"]]],
                     {"relative error": errors, "predicted": cells("predicted"), "measured": cells("measured")}, WIDTH)

