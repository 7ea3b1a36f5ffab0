"""Wall time of the commands a user waits on (issue: "what fits my GPU"), each beside a baseline run in the same
process tree, so the figures are ratios on this machine rather than absolute claims.

    python benchmarks/bench_commands.py [--repeats 3] [--only help,measure,max-batch,audit] [--before REV]

  command                                         baseline
  --help                                          importing torch, pandas and matplotlib (what an eager CLI pays)
  measure --preset gpt2-xl --device meta          building GPT-2 XL on meta and two untracked steps in a plain
                                                  Python process (collector and teardown as Python has them)
  max-batch --device meta --preset gpt2-xl        the same with --start 2 (a doubling search, no exact guess)
  audit                                           audit --no-measure (the formulas alone)

Prints the median seconds of each (fresh `python -m profiler` processes), the ratio to its baseline and the
target of the issue (met or not). With `--before REV` each command also runs from a git worktree of REV (say the
revision before a change), in the same run, and the before/after ratio is printed beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILER = [sys.executable, "-m", "profiler"]
FLOOR_STEPS = ("from model import StepSpec, preset\nfrom model.step import build, make_batch, train_step\n"
               "spec = StepSpec(preset('gpt2-xl'))\nmodel, adamw = build(spec, 'meta')\n"
               "tokens, targets = make_batch(spec.model, 1, 'meta')\n"
               "for _ in range(2):\n    train_step(model, adamw, tokens, targets, spec.setup)\n")
CASES = {  # name: (command, baseline, target seconds)
    "help": (PROFILER + ["--help"], [sys.executable, "-c", "import torch, pandas, matplotlib.pyplot"], 1.5),
    "measure": (PROFILER + ["measure", "--preset", "gpt2-xl", "--device", "meta"],
                [sys.executable, "-c", FLOOR_STEPS], 4.0),
    "max-batch": (PROFILER + ["max-batch", "--device", "meta", "--preset", "gpt2-xl"],
                  PROFILER + ["max-batch", "--device", "meta", "--preset", "gpt2-xl", "--start", "2"], 8.0),
    "audit": (PROFILER + ["audit"], PROFILER + ["audit", "--no-measure"], 10.0),
}


def median_seconds(command: list[str], repeats: int, cwd: Path | None = None) -> float:
    """The median wall time of `repeats` runs, after one untimed run (bytecode compiled, files cached)."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


REPOSITORY = Path(__file__).resolve().parent.parent


def compile_bytecode(folder: Path) -> None:
    """Every module's bytecode written under `folder`, as an installed package has it after its first import (even
    under PYTHONDONTWRITEBYTECODE, which would otherwise make each run recompile, 0.17 s for the exact model's
    programs alone)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def worktree(revision: str):
    """A detached git worktree of `revision` in a temporary folder (`python -m profiler` run there imports that
    revision's packages), its bytecode compiled as this checkout's is, removed afterwards."""
    repository = REPOSITORY
    with tempfile.TemporaryDirectory(prefix="bench-before-") as parent:
        folder = Path(parent) / "tree"
        subprocess.run(["git", "-C", str(repository), "worktree", "add", "--detach", "--quiet", str(folder), revision],
                       check=True)
        try:
            compile_bytecode(folder)
            yield folder
        finally:
            subprocess.run(["git", "-C", str(repository), "worktree", "remove", "--force", str(folder)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated cases (default: all of " + ", ".join(CASES) + ")")
    parser.add_argument("--before", metavar="REV", help="also run each command from a worktree of this revision")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    for package in ("analytic", "model", "profiler"):
        compile_bytecode(REPOSITORY / package)
    with worktree(args.before) if args.before else contextlib.nullcontext() as before_tree:
        header = f"{'case':<10} {'seconds':>8} {'baseline':>9} {'ratio':>6} {'target':>7}  met"
        print(header + (f"  {'before':>7} {'before/after':>12}" if before_tree else ""))
        for name in names:
            command, baseline, target = CASES[name]
            seconds, base = median_seconds(command, args.repeats), median_seconds(baseline, args.repeats)
            line = (f"{name:<10} {seconds:8.2f} {base:9.2f} {seconds / base:6.2f} {target:7.1f}  "
                    f"{'yes' if seconds <= target else 'no ':<3}")
            if before_tree:
                before = median_seconds(command, args.repeats, cwd=before_tree)
                line += f"  {before:7.2f} {before / seconds:12.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
