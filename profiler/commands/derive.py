"""`python -m profiler derive`: derive the exact model's programs on the installed torch and cache them, so that
the exact set runs them on a torch the shipped programs do not hold on (analytic.exact.source)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the programs (default: the cache file the exact set reads for this "
                             "torch, under $XDG_CACHE_HOME or ~/.cache/adamw-profiler)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def derive_all(progress: bool) -> dict:
    """Every layout class and AdamW program, traced on meta (profiler.measuring.derive)."""
    from tqdm import tqdm

    from profiler.measuring.derive import class_keys, derive

    return derive(tqdm(class_keys(), desc="layout classes", unit="class", file=sys.stderr,
                       disable=None if progress else True))


def run(args: argparse.Namespace) -> int:
    import torch

    from analytic.exact.versions import cached_path
    from profiler.measuring.derive import render

    out = args.out or cached_path(torch.__version__)
    start = time.perf_counter()
    text = render(derive_all(not args.quiet))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"derived the exact model's programs on torch {torch.__version__} in {time.perf_counter() - start:.0f} s: "
          f"{out}; `python -m profiler check` tests them")
    return 0
