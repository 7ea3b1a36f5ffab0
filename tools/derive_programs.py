"""Regenerates analytic/exact/derived.py, the exact model's allocation programs, from traces of the step on meta
(profiler/measuring/derive.py), every layout class and AdamW implementation (about 6 minutes on 2 cores):

    python tools/derive_programs.py            # writes the file
    python tools/derive_programs.py --check    # exit 1 if the committed file differs from a fresh derivation

tests/test_exact.py re-derives a sample (every AdamW program and the general class of each attention option) in CI.
"""
import argparse
import difflib
import sys
from pathlib import Path

from tqdm import tqdm

from profiler.measuring.derive import class_keys, derive, render

TARGET = Path(__file__).resolve().parent.parent / "analytic" / "exact" / "derived.py"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args()
    text = render(derive(tqdm(class_keys(), desc="layout classes", file=sys.stderr)))
    if not args.check:
        TARGET.write_text(text)
        print(TARGET)
    elif text != TARGET.read_text():
        diff = difflib.unified_diff(TARGET.read_text().splitlines(), text.splitlines(), "committed", "derived",
                                    lineterm="", n=1)
        print("\n".join(list(diff)[:40]))
        sys.exit(1)
    else:
        print(f"{TARGET} is what this torch derives")
