"""Speed of the exact model where no torch is needed, beside one measured step on meta as the baseline, all measured
in the same run, so the figures are ratios on this machine rather than absolute claims.

    python benchmarks/bench_exact.py [--preset gpt2-xl] [--batch-size 1] [--repeats 5] [--configs 10000 100000]

  case              what                                                          target (issue 28)
  measured step     profiler.measuring.measure.measure(spec, "meta")               (the baseline)
  exact, one call   analytic.exact.predict(spec), in process                       <= 1 ms a call
  exact, arrays     analytic.exact.evaluate_arrays over --configs random configs   >= 100,000 configs a second
                    (a row for each count given)
  predict CLI       `python -m profiler predict --preset PRESET`, a fresh process  <= 0.3 s wall

Prints the median of --repeats of each, how many of it fit in the time of one measured step, and the target (met
or not). The random configs keep d_model divisible by num_heads, B and H >= 2 and T >= 2 (one layout: the exact
model's domain where its programs are shared); they are drawn from a fixed seed.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # this checkout's packages, not an installed copy's

import numpy as np  # noqa: E402
from bench_commands import compile_bytecode  # noqa: E402

TARGETS = {"exact, one call": (1.0, "at most"), "exact, arrays": (100_000, "at least"), "predict CLI": (0.3, "at most")}


def median_of(repeats: int, run) -> float:
    """The median seconds of `repeats` calls of run()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_sizes(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    heads = rng.integers(2, 33, count)
    d_model = heads * rng.integers(8, 129, count)
    return {"vocab_size": rng.integers(100, 60_000, count), "context_length": rng.integers(2, 2049, count),
            "num_layers": rng.integers(1, 49, count), "d_model": d_model, "num_heads": heads, "d_ff": 4 * d_model,
            "batch_size": rng.integers(2, 65, count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2-xl")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls of the exact model per timed repeat")
    parser.add_argument("--configs", type=int, nargs="+", default=[10_000, 100_000],
                        help="configs per evaluate_arrays call (a row for each)")
    args = parser.parse_args()

    from analytic import exact
    from model import StepSpec, preset
    from profiler.measuring.measure import measure

    spec = StepSpec(preset(args.preset), batch_size=args.batch_size)
    for package in ("analytic", "model", "profiler"):
        compile_bytecode(REPOSITORY / package)

    measure(spec, "meta")  # imports and caches warm for everybody
    step = median_of(max(1, args.repeats // 2), lambda: measure(spec, "meta"))

    exact.predict(spec)
    one_call = median_of(args.repeats, lambda: [exact.predict(spec) for _ in range(args.calls)]) / args.calls

    arrays = {}
    for count in args.configs:
        sizes = random_sizes(count)
        exact.evaluate_arrays(**{name: values[:10] for name, values in sizes.items()})
        arrays[count] = median_of(args.repeats, lambda: exact.evaluate_arrays(**sizes))

    command = [sys.executable, "-m", "profiler", "predict", "--preset", args.preset]
    run_cli = lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPOSITORY)  # noqa: E731
    run_cli()
    cli = median_of(args.repeats, run_cli)

    rows = [("measured step", "measured step", step, "s", 1.0),
            ("exact, one call", "exact, one call", one_call * 1e3, "ms", step / one_call),
            *((f"exact, {count:,} configs", "exact, arrays", count / seconds, "configs/s", step / seconds * count)
              for count, seconds in arrays.items()),
            ("predict CLI", "predict CLI", cli, "s", step / cli)]
    print(f"{args.preset}, batch {args.batch_size}; medians of {args.repeats}")
    print(f"{'case':<24} {'value':>12} {'unit':<10} {'per measured step':>18} {'target':>9}  met")
    for name, case, value, unit, per_step in rows:
        shown = f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"
        line = f"{name:<24} {shown:>12} {unit:<10} {per_step:18,.1f}"
        if case in TARGETS:
            target, bound = TARGETS[case]
            met = value <= target if bound == "at most" else value >= target
            line += f" {target:9,g}  {'yes' if met else 'no'}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
