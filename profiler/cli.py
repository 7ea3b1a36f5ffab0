"""`python -m profiler <command>`: argument parsing and printing only; the work is done by library functions.

Each command lives in profiler/commands/<name>.py with `add_arguments(parser)` and `run(args) -> int`; a command
module imports torch, pandas and the measuring code inside `run`, so that building the parser (and `--help`)
stays fast. Bad input exits 2 with one line on stderr, never a traceback or the whole usage.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import sys
from typing import NamedTuple

from profiler.errors import CudaUnavailableError, TorchUnavailableError, UsageError

PROG = "python -m profiler"


class Command(NamedTuple):
    module: str
    help: str
    runs_steps: bool  # it runs training steps: torch._dynamo is imported up front (import_uncollected)


COMMANDS = {
    "predict": Command("profiler.commands.predict", "every formula set's predictions side by side", False),
    "audit": Command("profiler.commands.audit", "audit the five seed answers' GPT-2 XL figures", True),
    "measure": Command("profiler.commands.measure", "measure one training step beside every formula set", True),
    "explain": Command("profiler.commands.explain", "textbook vs exact vs measured, component by component", True),
    "formula": Command("profiler.commands.formula",
                       "the exact model as a formula over L, B, T, D, H, F, V (and a budget M)", False),
    "max-batch": Command("profiler.commands.max_batch",
                         "the largest batch that fits a memory budget, searched and predicted", True),
    "sweep": Command("profiler.commands.sweep",
                     "measure a grid of configurations (resumable), then write its report", True),
    "report": Command("profiler.commands.report", "rewrite a sweep folder's report (md, html, csv, plots)", False),
    "check": Command("profiler.commands.check",
                     "gate: fail if a formula set misses a measured term on a meta grid", True),
    "derive": Command("profiler.commands.derive",
                      "derive the exact model's programs on the installed torch and cache them", True),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: the problem and where to read the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Measure a Transformer LM training step with AdamW (on a GPU, or simulated "
                                           "on meta tensors) and grade memory and FLOP formulas against it.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        sub.set_defaults(module_name=command.module, runs_steps=command.runs_steps)
        importlib.import_module(command.module).add_arguments(sub)
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


def import_uncollected(module_name: str, runs_steps: bool):
    """The command's module, and for a command that runs steps torch and torch._dynamo (which torch imports on the
    first op its Python references run, as every op on meta does), imported with the cyclic garbage collector off,
    then frozen out of its reach (gc.freeze): the hundreds of thousands of objects they make live as long as the
    process, and collecting again and again while they are made costs about 0.5 s of `measure --preset gpt2-xl`
    (benchmarks/bench_commands.py). Garbage already there is collected first, so that none is frozen (main() called
    again in one process, as the tests do); the collector is on again for the command itself. A command that runs
    no step (predict, formula, report) imports no torch."""
    gc.collect()
    gc.disable()
    try:
        module = importlib.import_module(module_name)
        if runs_steps:
            import torch  # noqa: F401
            import torch._dynamo  # noqa: F401
    except ImportError as error:
        if error.name != "torch" and not (error.name or "").startswith("torch."):
            raise
        raise TorchUnavailableError("this command runs the training step, which needs torch, and torch cannot be "
                                    f"imported here ({error}); install it as the README's Quickstart says") from None
    finally:
        gc.freeze()
        gc.enable()
    return module


def _derive_on_first_use_here() -> None:
    """The exact set runs the installed torch's programs and derives what they lack as it is needed (each
    derivation says so in one line; `check` says which programs it ran): the registry gets those programs, and a
    user's model's exact model, derived on first use (analytic.exact.derivation.model_cache.verified_model)."""
    from analytic.exact.derivation.on_demand import deriving_programs
    from analytic.formula_sets import use_exact_programs

    use_exact_programs(deriving_programs(), models=verified_model_here)


def verified_model_here(spec):
    """analytic.exact.derivation.model_cache.verified_model, imported (with torch) when a user's model needs it."""
    from analytic.exact.derivation.model_cache import verified_model

    return verified_model(spec)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, its one line already printed)
        return int(done.code or 0)
    try:
        module = import_uncollected(args.module_name, args.runs_steps)
        _derive_on_first_use_here()
        return module.run(args) or 0
    except CudaUnavailableError as error:
        print(f"error: {error}; without a GPU, simulate the step on meta tensors: `{on_meta(argv)}`",
              file=sys.stderr)
        return 2
    except (UsageError, ValueError, OSError, TorchUnavailableError) as error:  # OSError: a path, a full disk
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
