"""Regenerates analytic/exact/derived_sharded.json.gz, the shipped programs of a sharded rank (analytic.exact.sharded):
the classes of the dist grid's points and of analytic.exact.sharded.SHIPPED_SETUPS, each derived from traces of
small simulated ranks (analytic/exact/derivation/derive_sharded.py, about 5 s a class on 2 cores). Any other class is
derived on first use.

    python tools/derive_sharded_programs.py            # writes the file
    python tools/derive_sharded_programs.py --check    # exit 1 if the committed file differs from a fresh derivation

tests/test_sharded.py re-derives one shipped class in CI.
"""
import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from analytic.exact import store
from analytic.exact.sharded import shipped_setup_keys
from analytic.exact.source import SHIPPED_FILES
from analytic.sizes import ShardedClass
from analytic.exact.derivation.derive_sharded import derive_sharded_class
from profiler.experiments.grid import expand, load_grid


def shipped_keys() -> list[ShardedClass]:
    """Every class the dist grid's points and SHIPPED_SETUPS need, in a stable order."""
    keys = [ShardedClass.of(point.spec) for point in expand(load_grid("dist"))]
    return list(dict.fromkeys(keys + shipped_setup_keys()))


TARGET = Path(__file__).resolve().parent.parent / "analytic" / "exact" / SHIPPED_FILES["sharded"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args()
    classes = {key.name(): derive_sharded_class(key)
               for key in tqdm(shipped_keys(), desc="sharded classes", file=sys.stderr)}
    if not args.check:
        store.write(TARGET, {"torch_version": torch.__version__, "classes": classes})
        print(TARGET)
    elif classes != store.read(TARGET)["classes"]:
        print(f"{TARGET} differs from what this torch derives")
        sys.exit(1)
    else:
        print(f"{TARGET} is what this torch derives")
