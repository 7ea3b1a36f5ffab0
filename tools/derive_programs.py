"""Regenerates analytic/exact/derived.json.gz, the exact model's allocation programs, from traces of the step on meta
(analytic/exact/derivation/derive.py: the derivation of any model's code, analytic.exact.derivation.trace and .fit,
with the named symbols of analytic.sizes), every layout class and AdamW implementation (about 11 minutes of one
core):

    python tools/derive_programs.py            # writes the file
    python tools/derive_programs.py --check    # exit 1 if the committed file differs from a fresh derivation

tests/test_exact.py re-derives a sample (every AdamW program and the general class of each attention option) in CI.
"""
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from analytic.exact import store
from analytic.exact.derivation.derive import class_keys, derive, document

TARGET = Path(__file__).resolve().parent.parent / "analytic" / "exact" / "derived.json.gz"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args()
    fresh = document(derive(tqdm(class_keys(), desc="layout classes", file=sys.stderr)))
    if not args.check:
        store.write(TARGET, fresh)
        print(TARGET)
    else:
        committed = store.read(TARGET)
        differing = [f"{part} {name}" for part in ("classes", "optimizers")
                     for name in sorted(set(fresh[part]) | set(committed[part]))
                     if fresh[part].get(name) != committed[part].get(name)]
        if differing:
            print(f"{TARGET} differs from what this torch derives in {len(differing)} keys, the first:")
            print("\n".join(differing[:20]))
            sys.exit(1)
        print(f"{TARGET} is what this torch derives")
