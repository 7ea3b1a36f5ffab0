"""`python -m profiler max-batch`: the largest batch that fits a memory budget, searched and predicted."""
from __future__ import annotations

import argparse

from analytic.units import format_bytes, parse_bytes
from profiler.cli import UsageError, add_config_arguments, config_from_args
from profiler.cuda import CudaUnavailableError, cuda_device
from profiler.max_batch import DEFAULT_LIMIT, cuda_fits, find_max_batch, meta_fits, predicted_max_batches


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, batch=False)
    parser.add_argument("--device", default="cuda",
                        help="cuda (a real step under an emulated budget; cuda:N for another GPU) or meta "
                             "(the simulated step's peak against the budget)")
    parser.add_argument("--budget", default="80GB", help="memory budget with its unit: 80GB, 80GiB, 40GB ...")
    parser.add_argument("--start", type=int, default=1, help="first batch size tried (default 1)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="largest batch size tried")


def _fits(args: argparse.Namespace, config, budget: int):
    if args.device == "meta":
        try:
            return meta_fits(config, args.optimizer, budget)
        except ModuleNotFoundError as error:
            if error.name != "profiler.measure":
                raise
            raise UsageError("--device meta needs profiler/measure.py, which is not written yet") from None
    if not args.device.startswith("cuda"):
        raise UsageError(f"--device must be cuda, cuda:N or meta, got {args.device!r}")
    try:
        device = cuda_device(args.device)
    except CudaUnavailableError as error:
        raise UsageError(f"--device {args.device}: {error}") from None
    return cuda_fits(config, args.optimizer, budget, device)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    budget = parse_bytes(args.budget)
    if not 1 <= args.start <= args.limit:
        raise UsageError(f"need 1 <= --start <= --limit, got {args.start} and {args.limit}")
    fits = _fits(args, config, budget)
    predictions = predicted_max_batches(config, budget, args.optimizer)  # before the search: fail fast
    probes: list[tuple[int, bool]] = []
    maximum = find_max_batch(fits, args.start, args.limit, probes)
    print(f"{config.name}, AdamW {args.optimizer}, {config.dtype}, budget {args.budget} = {budget:,} bytes "
          f"({format_bytes(budget, 'GiB')}), device {args.device}")
    print("probes: " + ", ".join(f"{batch} {'fits' if fitted else 'does not fit'}" for batch, fitted in probes))
    bound = "at least " if maximum == args.limit else ""
    print(f"searched maximum batch size: {bound}{maximum}")
    if predictions:
        print("predicted by formula sets:")
        width = max(map(len, predictions))
        for name, predicted in predictions.items():
            print(f"  {name:<{width}}  {'(no max_batch_size)' if predicted is None else predicted}")
    return 0

