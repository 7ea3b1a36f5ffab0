"""`python -m profiler derive`: derive the exact model's programs on the installed torch and cache them, so that
the exact set runs them on a torch the shipped programs do not hold on (analytic.exact.source.for_torch)."""
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
    parser.add_argument("--against-shipped", action="store_true",
                        help="derive nothing: compare the programs derived on this torch so far (its cache file) "
                             "with the shipped ones, and print where they differ and which op (--json: one JSON "
                             "document)")
    parser.add_argument("--json", action="store_true", help="with --against-shipped, one JSON document")


def derive_all(progress: bool) -> dict:
    """Every layout class and AdamW program, traced on meta (analytic.exact.derivation.derive)."""
    from tqdm import tqdm

    from analytic.exact.derivation.derive import class_keys, derive

    return derive(tqdm(class_keys(), desc="layout classes", unit="class", file=sys.stderr,
                       disable=None if progress else True))


def against_shipped(as_json: bool) -> int:
    """The classes derived on this torch whose programs differ from the shipped ones, token by token."""
    import json

    import torch

    from analytic.exact.source import shipped
    from analytic.exact.versions import cached_path
    from analytic.exact.derivation.on_demand import cached_programs
    from analytic.exact.derivation.version_diff import class_differences, differing_classes

    path = cached_path(torch.__version__)
    derived_here = cached_programs(torch.__version__)["classes"]
    rows = [row for key in differing_classes(derived_here) for row in class_differences(key)]
    if as_json:
        print(json.dumps({"torch": torch.__version__, "shipped_on": shipped().derived_on, "classes_compared":
                          len(derived_here), "differences": rows}, indent=2))
        return 0
    print(f"{len(derived_here)} classes derived on torch {torch.__version__} ({path}) against the shipped programs "
          f"(derived on {shipped().derived_on}): {len({row['class'] for row in rows})} differ")
    for row in rows:
        print(f"  {row['class']}, {row['window']}: shipped [{row['shipped']}] here [{row['here']}] "
              f"(ops here: {', '.join(row['ops here'])})")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from analytic.exact import store
    from analytic.exact.versions import cached_path
    from analytic.exact.derivation.derive import document

    if args.against_shipped:
        return against_shipped(args.json)
    out = args.out or cached_path(torch.__version__)
    start = time.perf_counter()
    store.write(out, document(derive_all(not args.quiet)))
    print(f"derived the exact model's programs on torch {torch.__version__} in {time.perf_counter() - start:.0f} s: "
          f"{out}; `python -m profiler check` tests them")
    return 0
