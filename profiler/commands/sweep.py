"""`python -m profiler sweep`: measure a grid into a folder (resumable), then write its report."""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from profiler.commands.options import (add_allow_long_argument, add_device_argument, add_formula_set_argument,
                                       check_points, load_formula_sets)
from profiler.errors import CudaUnavailableError
from profiler.experiments.grid import load_grid

REPORTS = Path("reports")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device_argument(parser, "auto (default): with --grid, the grid's own device; without, cuda and the gpu "
                                "grid when torch sees a GPU, else meta and the ci grid")
    parser.add_argument("--grid", help="a shipped grid (ci, gpu, gpt2) or a path to a .toml file")
    parser.add_argument("--out", type=Path,
                        help="results folder: new, empty, or a sweep of the same grid on the same device "
                             "(resumed); anything else is refused (default: a fresh reports/sweep-...)")
    parser.add_argument("--no-report", action="store_true",
                        help="measure only; `profiler report DIR` later (a CUDA sweep: `report --simulate DIR`, "
                             "which also simulates its points on meta)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_formula_set_argument(parser, "also grade this formula set in the report: a built-in name or your own .py "
                                     "file (repeatable; give it again to `profiler report`)")
    add_allow_long_argument(parser)


def resolve(grid_name: str | None, device: str, has_cuda: bool) -> tuple[str, str]:
    """(grid, device): an explicit choice wins; 'auto' is the grid's own device, or GPU/ci by what is here."""
    if grid_name is None:
        if device == "auto":
            device = "cuda" if has_cuda else "meta"
        grid_name = "gpu" if device == "cuda" else "ci"
    if device == "auto":
        device = load_grid(grid_name).device
    if device == "cuda" and not has_cuda:
        raise CudaUnavailableError(f"sweeping grid {grid_name} on cuda needs a GPU, and torch sees none")
    return grid_name, device


def default_out(grid_name: str, device: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS / f"sweep-{Path(grid_name).stem}-{device}-{stamp}"


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs neither torch nor pandas
    import torch

    from profiler.experiments.simulation import simulations
    from profiler.experiments.sweep import check_folder, run_sweep
    from profiler.experiments.truth import save_audit
    from profiler.reports.report import write_report
    from profiler.reports.results import read_results

    load_formula_sets(args)  # a bad formula file fails before anything is measured
    grid_name, device = resolve(args.grid, args.device, torch.cuda.is_available())
    grid = load_grid(grid_name)  # a bad grid fails here, before any folder exists
    out = args.out or default_out(grid.name, device)
    check_folder(out, grid, device)  # a folder it must not use fails here, before anything is written
    check_points(grid, device, args.allow_long)
    print(out)
    sys.stdout.flush()
    rows = run_sweep(grid, out, device, progress=not args.quiet)
    failed = [row for row in rows if row["outcome"] != "ok"]
    for row in failed:
        print(f"{row['outcome']}: {row['label']}: {row['error']}", file=sys.stderr)
    if not args.no_report:
        simulations(out, read_results(out), progress=not args.quiet)  # the CUDA points beside their meta steps
        print(save_audit(out))
        for path in write_report(out):
            print(path)
    return 0
