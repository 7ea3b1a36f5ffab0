"""`python -m profiler <command>`: argument parsing and printing only; the work is done by library functions.

Each command lives in profiler/commands/<name>.py with `add_arguments(parser)` and `run(args) -> int`.
Bad input exits 2 with one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from model.config import ModelConfig, preset
from model.vocabulary import OPTIMIZER_IMPLEMENTATIONS

COMMANDS = {  # name -> (module, help)
    "predict": ("profiler.commands.predict", "every formula set's predictions side by side"),
    "audit": ("profiler.commands.audit", "audit the five seed answers' GPT-2 XL figures"),
    "measure": ("profiler.commands.measure", "measure one training step beside every formula set"),
    "explain": ("profiler.commands.explain", "textbook vs exact vs measured, component by component"),
    "max-batch": ("profiler.commands.max_batch", "the largest batch that fits a memory budget, searched and predicted"),
    "sweep": ("profiler.commands.sweep", "measure a grid of configurations (resumable), then write its report"),
    "report": ("profiler.commands.report", "rewrite a sweep folder's report (md, html, csv, plots)"),
    "check": ("profiler.commands.check", "gate: fail if a formula set misses a measured term on a meta grid"),
}

SIZE_FIELDS = ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def add_config_arguments(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    """--preset or explicit sizes, plus the options every command that builds a config shares."""
    group = parser.add_argument_group("model size (a --preset, or sizes that override it)")
    group.add_argument("--preset", help="gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, tiny, mini, small-cpu")
    for name in SIZE_FIELDS:
        group.add_argument("--" + name.replace("_", "-"), type=int, dest=name)
    group.add_argument("--positional", choices=("learned", "rope", "none"))
    group.add_argument("--attention", choices=("explicit", "sdpa"))
    group.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
    if batch:
        parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--optimizer", choices=OPTIMIZER_IMPLEMENTATIONS, default="foreach",
                        help="AdamW implementation (default foreach, as on CUDA)")


def config_from_args(args: argparse.Namespace) -> ModelConfig:
    sizes = {name: getattr(args, name) for name in SIZE_FIELDS if getattr(args, name, None) is not None}
    options = {name: getattr(args, name) for name in ("positional", "attention", "dtype")
               if getattr(args, name, None) is not None}
    if args.preset:
        return preset(args.preset).replace(**sizes, **options)
    missing = [f"--{n.replace('_', '-')}" for n in SIZE_FIELDS[:5] if n not in sizes]
    if missing:
        raise UsageError(f"give --preset or all of the sizes; missing {' '.join(missing)}")
    return ModelConfig(**sizes, **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m profiler", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) is not None and getattr(args, "batch_size", 1) <= 0:
        print(f"error: --batch-size must be positive, got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(args.module_name).run(args) or 0
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
