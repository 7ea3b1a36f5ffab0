"""`python -m profiler max-batch`: the largest batch that fits a memory budget, searched and predicted."""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

from analytic.formula_sets import max_batch_sizes
from analytic.units import DEFAULT_BUDGET, format_bytes, parse_bytes
from profiler.commands.options import (add_allow_long_argument, add_config_arguments, add_formula_set_argument,
                                       check_work, load_formula_sets, new_file, positive_int, spec_from_args)
from profiler.errors import UsageError
from profiler.reports.tables import WIDTH, human_bytes
from profiler.measuring.search import DEFAULT_LIMIT, confirm_max_batch, find_max_batch, linear_guess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, batch=False)
    parser.add_argument("--device", default="auto",
                        help="auto (default): cuda when torch sees a GPU, else meta; cuda (a real step under an "
                             "emulated budget; cuda:N for another GPU); meta (the simulated step's peak against "
                             "the budget)")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, help="memory budget with its unit: 80GB, 80GiB, 40GB ...")
    parser.add_argument("--start", type=positive_int, default=1,
                        help="first batch size tried by a search (default 1: start from the exact set's answer, "
                             "confirmed by two measured steps, and search only if they refute it)")
    parser.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT, help="largest batch size tried")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the text")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw peak memory against batch size: the measured probes (meta) and every "
                             "formula set that describes the setup, with this budget and 80GB, 80GiB, 40GB, 24GB; "
                             "in the format the name ends with (.png, .jpg, .svg, .pdf, .webp)")
    add_formula_set_argument(parser)
    add_allow_long_argument(parser)


class ProbesShown:
    """fits(batch) that counts its probes (each a measured step) on a progress bar on stderr, where it is a
    terminal; close() removes the bar."""

    def __init__(self, fits, device: str):
        from tqdm import tqdm

        self.fits = fits
        self.bar = tqdm(desc=f"measuring batches on {device}", unit="probe", file=sys.stderr, disable=None,
                        leave=False)

    def __call__(self, batch: int) -> bool:
        self.bar.set_postfix(batch=batch)
        fitted = self.fits(batch)
        self.bar.update()
        return fitted

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs no torch
    import torch

    from profiler.measuring.max_batch import batch_fits
    from profiler.measuring.measure import resolve_device

    spec = spec_from_args(args, sharded=True)
    setup, optimizer = spec.setup, spec.setup.optimizer
    load_formula_sets(args)
    budget = parse_bytes(args.budget)
    if args.start > args.limit:
        raise UsageError(f"need --start <= --limit, got {args.start} and {args.limit}")
    device = resolve_device(args.device)
    if device != "meta" and not device.startswith("cuda"):
        raise UsageError(f"--device must be auto, meta, cuda or cuda:N, got {args.device!r}")
    if setup.shard != "none" and device != "meta":
        raise UsageError(f"--shard {setup.shard}: the largest batch of a rank is searched on meta (simulated), "
                         f"got --device {args.device}")
    if args.plot:
        new_file("--plot", args.plot)
        plot_format(args.plot)
    check_work(spec, device, args.allow_long, "each probe")
    peaks: dict[int, int] = {}
    fits = ProbesShown(batch_fits(spec, budget, device, peaks), device)  # no GPU: fails here
    predictions = max_batch_sizes(spec, budget)
    probes: list[tuple[int, bool]] = []
    guess = predictions.get("exact") if args.start == 1 else None
    guessed_by = "the exact set's answer"
    if setup.shard != "none" and args.start == 1 and guess is None:  # outside the exact set's sharded domain
        guess, guessed_by = linear_guess(fits, peaks, budget, probes), "the line through the peaks at 1 and 2"
    maximum, confirmed = confirm_max_batch(fits, guess, args.limit, probes) if guess is not None else \
        (find_max_batch(fits, args.start, args.limit, probes), False)
    fits.close()
    if args.plot:
        write_plot(args.plot, spec, budget, args.budget, peaks, maximum)
    alloc_conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF") if device.startswith("cuda") else None
    hint = allocator_hint(device, guess, maximum, alloc_conf)
    if args.json:
        print(json.dumps({"config": spec.flat(), "optimizer": optimizer, "device": device,
                          "torch_version": torch.__version__, "alloc_conf": alloc_conf, "hint": hint,
                          "budget": args.budget, "budget_bytes": budget,
                          "probes": [{"batch_size": batch, "fits": fitted} for batch, fitted in probes],
                          "max_batch": maximum, "step_batch": setup.micro_batches * maximum,
                          "at_limit": maximum == args.limit,
                          "exact_confirmed": confirmed and guessed_by == "the exact set's answer", "guess": guess,
                          "guessed_by": guessed_by, "guess_confirmed": confirmed, "predicted": predictions}, indent=2))
        return 0
    print(f"{spec.model.name}: {spec.options_text()}, AdamW {optimizer}, device {device}")
    print(f"budget {args.budget} = {budget:,} bytes ({format_bytes(budget, 'GiB')})")
    what = "probes (micro-batch sizes)" if setup.micro_batches > 1 else "probes"
    print(f"{what}: " + ", ".join(f"{batch} {'fits' if fitted else 'does not fit'}" for batch, fitted in probes))
    bound = "at least " if maximum == args.limit else ""
    how = (f"{guessed_by}, confirmed by measuring it and one more" if confirmed else
           "searched" + (f"; {guessed_by}, {guess}, was refuted by a measurement" if guess is not None else ""))
    if setup.shard != "none":
        how += f"; per rank of {setup.world_size}"
    if setup.micro_batches == 1:
        print(f"measured maximum batch size: {bound}{maximum} ({how})")
    else:
        print(f"measured maximum micro-batch size: {bound}{maximum} ({how}); the step's batch is "
              f"{setup.micro_batches} × {maximum} = {setup.micro_batches * maximum}")
    if hint:
        print(hint)
    if maximum == 0:
        print(nothing_fits(setup, args.budget, peaks.get(1)))
    answered = {name: predicted for name, predicted in predictions.items() if predicted is not None}
    print("predicted by formula sets:")
    width = max(map(len, answered), default=0)
    for name, predicted in answered.items():
        print(f"  {name:<{width}}  {predicted}")
    silent = [name for name in predictions if name not in answered]
    if silent:
        print(textwrap.fill("no answer (they do not describe this setup): " + ", ".join(silent), width=WIDTH,
                            initial_indent="  ", subsequent_indent="    "))
    return 0


def nothing_fits(setup, budget_text: str, peak_at_one: int | None) -> str:
    """What to say when not even batch 1 fits: its peak where measured, and the options that shrink it which the
    setup (a model.setup.Setup) does not use yet."""
    ways = []
    if setup.dtype == "float32" and setup.autocast == "none":
        ways.append("--dtype bfloat16 (2 bytes per parameter, gradient and moment)")
    if setup.checkpointing != "full":
        ways.append("--checkpointing full")
    ways.append("--shard fsdp2 --world-size N" if setup.shard == "none" else "more ranks (--world-size)")
    peak = f" (its peak is {human_bytes(peak_at_one)})" if peak_at_one else ""
    return f"nothing fits: batch 1 does not fit in {budget_text}{peak}; try " + ", ".join(ways)


def uses_expandable_segments(alloc_conf: str | None) -> bool:
    """Whether a PYTORCH_CUDA_ALLOC_CONF value turns the caching allocator's expandable segments on."""
    return "expandable_segments:True" in (alloc_conf or "")


def allocator_hint(device: str, guess: int | None, maximum: int, alloc_conf: str | None) -> str | None:
    """On a GPU where the exact set's answer did not run and expandable segments are off: the allocator may be why
    (its reserved memory, which the budget caps, exceeds what is allocated by its fragmentation)."""
    if not device.startswith("cuda") or guess is None or maximum >= guess or uses_expandable_segments(alloc_conf):
        return None
    return (f"hint: the exact set predicts {guess}; where the caching allocator's fragmentation is what refused it, "
            f"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True recovers it (it did for GPT-2 XL on an H200: "
            f"docs/gpu-runs.md)")


def plot_format(path: str) -> str:
    """The image format --plot's name ends with (plots.IMAGE_FORMATS); UsageError for another."""
    from profiler.reports import plots

    image_format = plots.image_format(path)
    if image_format is None:
        endings = ", ".join(f".{name}" for name in plots.IMAGE_FORMATS)
        raise UsageError(f"--plot {path}: give a name ending in {endings} (the format it is written in)")
    return image_format


def write_plot(path: str, spec, budget: int, budget_text: str, peaks: dict[int, int], maximum: int) -> None:
    """Peak against the (micro-)batch, in the format the path's suffix names: measured probes and each describing
    set's line, with budget lines."""
    from analytic.units import parse_bytes as bytes_of
    from profiler.reports import plots
    from profiler.reports.report import CURVE_BUDGETS, predicted_curves

    k = spec.setup.micro_batches
    largest = max(16, 2 * max([maximum, *peaks], default=1))
    steps = list(range(k, k * largest + 1, k * max(1, largest // 64)))
    curves = {name: ([batch // k for batch in batches], values)
              for name, (batches, values) in predicted_curves(spec, steps).items()}
    budgets = {budget_text: budget, **{text: bytes_of(text) for text in CURVE_BUDGETS if bytes_of(text) != budget}}
    title = f"{spec.model.name}, {spec.options_text()}, AdamW {spec.setup.optimizer}: measured maximum {maximum}"
    Path(path).write_bytes(plots.batch_curve(peaks, curves, budgets, title, plot_format(path)))
