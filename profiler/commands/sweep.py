"""`python -m profiler sweep`: measure a grid into a folder (resumable), then write its report."""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from profiler.cli import UsageError
from profiler.grid import DEVICES, load_grid

REPORTS = Path("reports")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto",) + DEVICES, default="auto",
                        help="auto (default): the grid's device; with no --grid, cuda and the gpu grid when a GPU "
                             "is available, else meta and the ci grid")
    parser.add_argument("--grid", help="a shipped grid (ci, gpu, gpt2) or a path to a .toml file")
    parser.add_argument("--out", type=Path,
                        help="results folder; an existing one is resumed (default: a fresh reports/sweep-...)")
    parser.add_argument("--no-report", action="store_true", help="measure only; `profiler report DIR` later")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve(grid_name: str | None, device: str) -> tuple[str, str | None]:
    """(grid, device): an explicit choice wins; 'auto' is the grid's own device, or GPU/ci by what is here."""
    import torch

    if grid_name is None:
        has_cuda = torch.cuda.is_available()
        if device == "auto":
            device = "cuda" if has_cuda else "meta"
        grid_name = "gpu" if device == "cuda" else "ci"
    if device == "auto":
        device = load_grid(grid_name).device
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"grid {grid_name} runs on cuda but torch.cuda.is_available() is False here; "
                         f"pass --device meta to simulate it")
    return grid_name, device


def default_out(grid_name: str, device: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPORTS / f"sweep-{Path(grid_name).stem}-{device}-{stamp}"


def run(args: argparse.Namespace) -> int:
    from profiler.sweep import run_sweep

    grid_name, device = resolve(args.grid, args.device)
    grid = load_grid(grid_name)  # a bad grid fails here, before any folder exists
    out = args.out or default_out(grid.name, device)
    print(out)
    sys.stdout.flush()
    rows = run_sweep(grid, out, device, progress=not args.quiet)
    failed = [row for row in rows if row["outcome"] != "ok"]
    for row in failed:
        print(f"{row['outcome']}: {row['label']}: {row['error']}", file=sys.stderr)
    if not args.no_report:
        from profiler.report import save_audit, write_report

        print(save_audit(out))
        for path in write_report(out):
            print(path)
    return 0
