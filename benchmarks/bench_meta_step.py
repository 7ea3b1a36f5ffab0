"""Speed of measuring a GPT-2 XL training step on meta, as ratios against baselines measured in the same run.

    python benchmarks/bench_meta_step.py [--preset gpt2-xl] [--batch-size 1] [--repeats 3]
                                         [--attention sdpa-flash] [--dtype bfloat16] [--autocast bfloat16]

Each contender does the same work from scratch: build the model and AdamW on meta, a warm-up step, the step.
  untracked   plain steps, no tracking (the floor)
  ours        profiler.measuring.measure.measure: memory of the warm-up and the measured step, FLOPs of the
              measured step
  memtracker  torch.distributed._tools.mem_tracker.MemTracker over the same two steps (memory only)
Prints the median seconds of each, the ratios, and this process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from torch.distributed._tools.mem_tracker import MemTracker

from model import StepSpec, preset
from model.setup import OPTIONS
from model.step import build, make_batch, train_step
from profiler.measuring.measure import measure


def untracked(spec):
    model, optimizer = build(spec, "meta")
    tokens, targets = make_batch(spec.model, spec.batch_size, "meta")
    train_step(model, optimizer, tokens, targets, spec.setup)
    train_step(model, optimizer, tokens, targets, spec.setup)


def ours(spec):
    measure(spec, "meta")


def memtracker(spec):
    model, optimizer = build(spec, "meta")
    tokens, targets = make_batch(spec.model, spec.batch_size, "meta")
    tracker = MemTracker()
    tracker.track_external(model, optimizer, tokens, targets)
    with tracker:
        train_step(model, optimizer, tokens, targets, spec.setup)  # warm-up: the optimizer state appears inside it
        tracker.reset_mod_stats()
        train_step(model, optimizer, tokens, targets, spec.setup)


def median_seconds(fn, spec, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(spec)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2-xl")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    for name in ("attention", "dtype", "autocast"):
        parser.add_argument("--" + name, choices=OPTIONS[name].choices, default=OPTIONS[name].default)
    args = parser.parse_args()
    spec = StepSpec(preset(args.preset), batch_size=args.batch_size).replace(
        attention=args.attention, dtype=args.dtype, autocast=args.autocast)
    untracked(spec)  # warm imports and caches once for everybody
    seconds = {fn.__name__: median_seconds(fn, spec, args.repeats)
               for fn in (untracked, ours, memtracker)}
    result = {"preset": args.preset, "attention": args.attention, "dtype": args.dtype, "autocast": args.autocast,
              "batch_size": args.batch_size, "repeats": args.repeats,
              "seconds": {name: round(value, 3) for name, value in seconds.items()},
              "ours_vs_untracked": round(seconds["ours"] / seconds["untracked"], 2),
              "memtracker_vs_ours": round(seconds["memtracker"] / seconds["ours"], 1),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
