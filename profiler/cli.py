"""`python -m profiler <command>`: argument parsing and printing only; the work is done by library functions.

Each command lives in profiler/commands/<name>.py with `add_arguments(parser)` and `run(args) -> int`; a command
module imports torch, pandas and the measuring code inside `run`, so that building the parser (and `--help`)
stays fast. Bad input exits 2 with one line on stderr, never a traceback or the whole usage.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from profiler.errors import CudaUnavailableError, UsageError

PROG = "python -m profiler"
COMMANDS = {  # name -> (module, help)
    "predict": ("profiler.commands.predict", "every formula set's predictions side by side"),
    "audit": ("profiler.commands.audit", "audit the five seed answers' GPT-2 XL figures"),
    "measure": ("profiler.commands.measure", "measure one training step beside every formula set"),
    "explain": ("profiler.commands.explain", "textbook vs exact vs measured, component by component"),
    "formula": ("profiler.commands.formula", "the exact model as a formula over L, B, T, D, H, F, V (and a budget M)"),
    "max-batch": ("profiler.commands.max_batch", "the largest batch that fits a memory budget, searched and predicted"),
    "sweep": ("profiler.commands.sweep", "measure a grid of configurations (resumable), then write its report"),
    "report": ("profiler.commands.report", "rewrite a sweep folder's report (md, html, csv, plots)"),
    "check": ("profiler.commands.check", "gate: fail if a formula set misses a measured term on a meta grid"),
    "derive": ("profiler.commands.derive", "derive the exact model's programs on the installed torch and cache them"),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: the problem and where to read the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Measure a Transformer LM training step with AdamW (on a GPU, or simulated "
                                           "on meta tensors) and grade memory and FLOP formulas against it.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def on_meta(argv: list[str]) -> str:
    """The same command line with --device meta, the way to run it without a GPU."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--device":
            skip = True
        elif not arg.startswith("--device="):
            out.append(arg)
    return " ".join([PROG, *out, "--device", "meta"])


def _derive_on_first_use_here() -> None:
    """On a torch the exact model was not verified on, let it derive what it lacks as it is needed (each derivation
    says so in one line; `check` says which programs it ran); a sharded rank's programs on every torch."""
    import torch

    from analytic.exact.versions import unverified_notice
    from profiler.measuring import on_demand

    if unverified_notice(torch.__version__):
        on_demand.install()
    on_demand.install_sharded()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, its one line already printed)
        return int(done.code or 0)
    try:
        module = importlib.import_module(args.module_name)
        _derive_on_first_use_here()
        return module.run(args) or 0
    except CudaUnavailableError as error:
        print(f"error: {error}; without a GPU, simulate the step on meta tensors: `{on_meta(argv)}`",
              file=sys.stderr)
        return 2
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
