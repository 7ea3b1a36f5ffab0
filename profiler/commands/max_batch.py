"""`python -m profiler max-batch`: the largest batch that fits a memory budget, searched and predicted."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from analytic.formula_sets import max_batch_sizes
from analytic.units import DEFAULT_BUDGET, format_bytes, parse_bytes
from profiler.commands.options import (add_allow_long_argument, add_config_arguments, add_formula_set_argument,
                                       check_work, load_formula_sets, new_file, positive_int, refuse_fused_on_meta,
                                       spec_from_args)
from profiler.errors import UsageError
from profiler.reports.tables import human_bytes, no_answer, wrapped
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
    parser.add_argument("--limit", type=positive_int,
                        help=f"largest batch size tried (default {DEFAULT_LIMIT}; on meta, where a probe costs the "
                             f"same at every batch, twice the exact set's answer where that is more)")
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
    if args.start > (args.limit or DEFAULT_LIMIT):
        raise UsageError(f"need --start <= --limit, got {args.start} and {args.limit or DEFAULT_LIMIT}")
    device = resolve_device(args.device)
    if device != "meta" and not device.startswith("cuda"):
        raise UsageError(f"--device must be auto, meta, cuda or cuda:N, got {args.device!r}")
    refuse_fused_on_meta(spec, device, "--device cuda (a GPU)")
    if setup.shard != "none" and device != "meta":
        raise UsageError(f"--shard {setup.shard}: the largest batch of a rank is searched on meta (simulated), "
                         f"got --device {args.device}")
    if args.plot:
        new_file("--plot", args.plot)
        plot_format(args.plot)
    check_work(spec, device, args.allow_long, "each probe")
    peaks: dict[int, int] = {}
    phases: dict[int, str] = {}
    fits = ProbesShown(batch_fits(spec, budget, device, peaks, phases), device)  # no GPU: fails here
    predictions = max_batch_sizes(spec, budget)
    probes: list[tuple[int, bool]] = []
    guess = predictions.get("exact") if args.start == 1 else None
    guessed_by = "the exact set's answer"
    if setup.shard != "none" and args.start == 1 and guess is None:  # outside the exact set's sharded domain
        guess, guessed_by = linear_guess(fits, peaks, budget, probes), "the line through the peaks at 1 and 2"
    limit = search_limit(args.limit, device, guess)
    maximum, confirmed = confirm_max_batch(fits, guess, limit, probes) if guess is not None else \
        (find_max_batch(fits, args.start, limit, probes), False)
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
                          "limit": limit, "at_limit": maximum == limit,
                          "exact_confirmed": confirmed and guessed_by == "the exact set's answer", "guess": guess,
                          "guessed_by": guessed_by, "guess_confirmed": confirmed, "predicted": predictions}, indent=2))
        return 0
    print(wrapped(f"{spec.model.name}: {spec.options_text()}, {spec.setup.optimizer_text}, device {device}"))
    print(f"budget {args.budget} = {budget:,} bytes ({format_bytes(budget, 'GiB')})")
    what = "probes (micro-batch sizes)" if setup.micro_batches > 1 else "probes"
    print(wrapped(f"{what}: " + ", ".join(f"{batch} {'fits' if fitted else 'does not fit'}"
                                          for batch, fitted in probes)))
    bound = "at least " if maximum == limit else ""
    how = how_found(guessed_by, guess, confirmed, maximum, limit)
    if setup.shard != "none":
        how += f"; per rank of {setup.world_size}"
    if setup.micro_batches == 1:
        print(wrapped(f"measured maximum batch size: {bound}{maximum} ({how})"))
    else:
        print(wrapped(f"measured maximum micro-batch size: {bound}{maximum} ({how}); the step's batch is "
                      f"{setup.micro_batches} × {maximum} = {setup.micro_batches * maximum}"))
    if hint:
        print(wrapped(hint))
    if maximum == 0:
        print(wrapped(nothing_fits(setup, args.budget, peaks.get(1), phases.get(1))))
    answered = {name: predicted for name, predicted in predictions.items() if predicted is not None}
    print("predicted by formula sets:")
    width = max(map(len, answered), default=0)
    for name, predicted in answered.items():
        print(f"  {name:<{width}}  {predicted}")
    silent = [name for name in predictions if name not in answered]
    if silent:
        print(no_answer(silent))
    return 0


def search_limit(given: int | None, device: str, guess: int | None) -> int:
    """The largest batch the search tries: --limit where given; else DEFAULT_LIMIT, or on meta (where a probe
    costs the same at every batch) twice the guess where that is more, so that a guess beyond DEFAULT_LIMIT is
    confirmed, or searched, as one within it is."""
    if given is not None:
        return given
    return max(DEFAULT_LIMIT, 2 * guess) if device == "meta" and guess is not None else DEFAULT_LIMIT


def how_found(guessed_by: str, guess: int | None, confirmed: bool, maximum: int, limit: int) -> str:
    """How the measured maximum was found, in words: the guess confirmed, or searched, and why (the guess refuted
    by a measurement, or beyond the limit, which stopped the search or refutes it by not fitting itself)."""
    if confirmed:
        return f"{guessed_by}, confirmed by measuring it and one more"
    if guess is not None and guess >= limit:
        if maximum == limit:
            return (f"--limit {limit} stopped the search; {guessed_by}, {guess}, lies beyond it: --limit "
                    f"{guess + 1} measures it")
        return f"searched; {guessed_by}, {guess}, is refuted: the limit, {limit}, does not fit"
    how = "searched" + (f"; {guessed_by}, {guess}, was refuted by a measurement" if guess is not None else "")
    if maximum == limit:
        how += f"; --limit {limit} stopped the search: a larger --limit searches further"
    return how


def nothing_fits(setup, budget_text: str, peak_at_one: int | None, phase_at_one: str | None = None) -> str:
    """What to say when not even batch 1 fits: its peak where measured, and the options that shrink it which the
    setup (a model.setup.Setup) does not use yet. Where batch 1 peaks in the optimizer step, the activations are
    gone by then: what shrinks the model states and AdamW's temporaries is suggested (bf16, sharding, for-loop
    AdamW instead of foreach's parameter-sized temporaries, a smaller model); where it peaks in the forward or
    backward, or the phase is not known (a GPU's probe), checkpointing instead of the last two. (Micro-batches
    never help here: batch 1 is one micro-batch of 1.)"""
    ways = []
    if setup.dtype == "float32" and setup.autocast == "none":
        ways.append("--dtype bfloat16 (2 bytes per parameter, gradient and moment)")
    if phase_at_one != "optimizer" and setup.checkpointing != "full":
        ways.append("--checkpointing full")
    ways.append("--shard fsdp2 --world-size N" if setup.shard == "none" else "more ranks (--world-size)")
    if phase_at_one == "optimizer":
        if setup.optimizer == "foreach":
            ways.append("--optimizer forloop")
        ways.append("a smaller model")
    peak = f" (its peak is {human_bytes(peak_at_one)}" if peak_at_one else ""
    if peak and phase_at_one:
        peak += f", in the {phase_at_one} phase"
    peak += ")" if peak else ""
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
    title = f"{spec.model.name}, {spec.options_text()}, {spec.setup.optimizer_text}: measured maximum {maximum}"
    Path(path).write_bytes(plots.batch_curve(peaks, curves, budgets, title, plot_format(path)))
