"""Regenerates analytic/exact/derived.py, the exact model's allocation programs, from traces of the step on meta
(profiler/measuring/derive.py). One command:

    python tools/derive_programs.py

tests/test_derived.py checks that the committed file equals a fresh derivation on the installed torch.
"""
from pathlib import Path

from profiler.measuring.derive import derive, render

TARGET = Path(__file__).resolve().parent.parent / "analytic" / "exact" / "derived.py"

if __name__ == "__main__":
    TARGET.write_text(render(derive()))
    print(TARGET)
