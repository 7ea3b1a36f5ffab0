"""Options shared by the commands: the model's size and block, the training setup (model.setup.SETUP_OPTIONS),
the device, positive integers. No torch import."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analytic.limits import too_large
from model.config import ARCH_OPTIONS, POSITIONAL_OPTIONS, PRESETS, ModelConfig, preset, source_arch
from model.hf import sizes_of
from model.setup import SETUP_OPTIONS, Setup
from model.spec import StepSpec
from model.vocabulary import DEVICES
from profiler.errors import UsageError

SIZE_FIELDS = ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff")
BLOCK_FIELDS = ("arch", "positional", "kv_heads", "dropout", "source")  # the model's fields beside sizes and name


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (argparse reports a bad one as one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {value}")
    return value


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    """--preset or explicit sizes and the block, the setup's options (SETUP_OPTIONS) and --batch-size (with
    `batch`)."""
    group = parser.add_argument_group("model size (a --preset, or sizes that override it)")
    group.add_argument("--preset", help=", ".join(PRESETS))
    for name in SIZE_FIELDS:
        group.add_argument(flag(name), type=int, dest=name)
    group.add_argument("--arch", choices=ARCH_OPTIONS, dest="arch")
    group.add_argument("--positional", choices=POSITIONAL_OPTIONS, dest="positional")
    group.add_argument("--kv-heads", type=positive_int, dest="kv_heads",
                       help="key/value heads, dividing --num-heads (grouped-query attention, arch llama; "
                            "default: as many as heads)")
    group.add_argument("--dropout", type=probability, dest="dropout",
                       help="probability of gpt2's dropouts (default 0.1 for arch gpt2)")
    group.add_argument("--model", dest="source", metavar="SOURCE",
                       help="the implementation: builtin (default), your own FILE.py:NAME or package.module:NAME "
                            "(a callable taking the sizes that returns the model), or hf:gpt2, hf:llama, "
                            "hf:PATH/config.json (Hugging Face transformers; sizes from the file); --arch says "
                            "which block your model has")
    setup = parser.add_argument_group("training setup")
    for option in SETUP_OPTIONS:
        if option.values is bool:
            setup.add_argument(flag(option.name), action=argparse.BooleanOptionalAction, dest=option.name,
                               help=option.help)
        elif option.values is int:
            setup.add_argument(flag(option.name), type=positive_int, dest=option.name,
                               help=f"{option.help} (default {option.default})")
        elif option.values is str:
            setup.add_argument(flag(option.name), dest=option.name, metavar="FILE.py:NAME", help=option.help)
        else:
            setup.add_argument(flag(option.name), choices=option.choices, dest=option.name,
                               help=f"{option.help} (default {option.default})")
    if batch:
        parser.add_argument("--batch-size", type=positive_int, default=1,
                            help="the step's batch (with --micro-batches k, k slices of batch-size / k)")


def refuse_fused_on_meta(spec: StepSpec, device: str, elsewhere: str = "") -> None:
    """A UsageError where fused AdamW would run on meta, which has no kernel for it: what to use instead, the
    --optimizer choices and `elsewhere`, the devices that run it which the command accepts ('' for none)."""
    if spec.setup.optimizer == "fused" and device == "meta":
        raise UsageError("fused AdamW does not run on meta tensors; use --optimizer foreach or forloop"
                         + (f", or {elsewhere}" if elsewhere else ""))


def add_device_argument(parser: argparse.ArgumentParser, help_text: str = "") -> None:
    """--device auto (the default: cuda when torch sees a GPU, else meta), meta, cpu or cuda."""
    parser.add_argument("--device", choices=("auto",) + DEVICES, default="auto",
                        help=help_text or "auto (default): cuda when torch sees a GPU, else meta (simulated)")


def setup_options(args: argparse.Namespace) -> dict:
    """The setup's options given on the command line (the others take Setup's defaults)."""
    return {option.name: getattr(args, option.name) for option in SETUP_OPTIONS
            if getattr(args, option.name, None) is not None}


def setup_from_args(args: argparse.Namespace) -> Setup:
    """The training setup the options give."""
    return Setup(**setup_options(args))


def spec_from_args(args: argparse.Namespace, sharded: bool = False) -> StepSpec:
    """The step spec the options give (at --batch-size, 1 where the command has none); `sharded`: the command
    handles sharded steps (others refuse --shard)."""
    sizes = {name: getattr(args, name) for name in SIZE_FIELDS if getattr(args, name, None) is not None}
    block = {name: getattr(args, name) for name in BLOCK_FIELDS if getattr(args, name, None) is not None}
    options = setup_options(args)
    if not sharded and options.get("shard", "none") != "none":
        raise UsageError(f"--shard {options['shard']} is taken by `measure`, `max-batch` and `predict`; this "
                         "command describes one device")
    batch_size = getattr(args, "batch_size", 1)
    source = block.get("source", "builtin")
    if source.startswith("hf:") and source.endswith(".json"):
        if args.preset:
            raise UsageError(f"--model {source} takes its sizes from the file; give no --preset")
        from_file = sizes_of(source)
        sizes = {**{name: value for name, value in from_file.items() if name in SIZE_FIELDS}, **sizes}
        block = {**{name: value for name, value in from_file.items() if name not in SIZE_FIELDS}, **block}
    elif source_arch(source) is not None:
        block.setdefault("arch", source_arch(source))
    if args.preset:
        spec = StepSpec(overridden(preset(args.preset), {**sizes, **block})).replace(**options, batch_size=batch_size)
    else:
        missing = [flag(n) for n in SIZE_FIELDS[:5] if n not in sizes]
        if missing:
            raise UsageError(f"give --preset or all of the sizes; missing {' '.join(missing)}")
        spec = StepSpec.of(**sizes, **block, **options, batch_size=batch_size)
    why = too_large(spec)
    if why is not None:
        raise UsageError(why)
    return spec


def overridden(model: ModelConfig, changes: dict) -> ModelConfig:
    """The preset `model` with `changes`, named for what ran: 'gpt2-medium (num_layers=12)' where a change differs
    from the preset, its own name where none does."""
    model, before = model.replace(**changes), model
    differ = [f"{name}={value}" for name, value in changes.items() if getattr(before, name) != value]
    return model.replace(name=f"{before.name} ({', '.join(differ)})") if differ else model


def new_file(option: str, path: str | os.PathLike) -> None:
    """Refuse (UsageError, one line naming the option and the path) a file the command could not write when it is
    done: one that exists (the tool never overwrites a file), whose folder is missing or not writable, or that
    cannot be created (made and removed at once). Checked before anything runs, so that no measurement is lost to
    a bad path."""
    path = Path(path)
    folder = path.parent
    try:
        if path.exists():
            raise UsageError(f"{option} {path} exists; the tool never overwrites a file: give a new path")
        if not folder.is_dir():
            raise UsageError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{option} {path}: the folder {folder} is not writable")
        with open(path, "xb"):  # what os.access cannot tell: a name too long, a file system that refuses
            pass
        path.unlink()
    except OSError as error:
        raise UsageError(f"{option} {path} cannot be written: {error.strerror or error}") from None


def add_formula_set_argument(parser: argparse.ArgumentParser,
                             help_text: str = "also grade this formula set: a built-in name or your own .py file "
                                              "(analytic.formula_sets.FormulaSet; repeatable)") -> None:
    parser.add_argument("--formula-set", action="append", dest="formula_sets", metavar="NAME|FILE.py",
                        help=help_text)


def load_formula_sets(args: argparse.Namespace) -> list[str] | None:
    """The names of the sets given with --formula-set, users' files loaded (and so graded beside the built-in
    sets from here on); None when none was given. A bad file or name raises one clear ValueError."""
    if not getattr(args, "formula_sets", None):
        return None
    from analytic.formula_sets import formula_sets  # numpy: not needed to build the parser

    return list(formula_sets(args.formula_sets))


def add_allow_long_argument(parser: argparse.ArgumentParser) -> None:
    from profiler.measuring.workload import LIMIT_SECONDS, duration

    parser.add_argument("--allow-long", action="store_true",
                        help=f"run a step estimated to take longer than {duration(LIMIT_SECONDS)} to measure "
                             "(refused otherwise: predict answers at once)")


def check_work(spec: StepSpec, device: str, allow_long: bool, what: str = "this step", notice: bool = True) -> None:
    """Refuse (UsageError, one line with the estimate) a step whose measurement on `device` is estimated past
    workload.LIMIT_SECONDS, unless `allow_long`; with `notice`, say on stderr what a long one will take before it
    runs (profiler.measuring.workload). Nothing runs here."""
    from profiler.measuring.workload import LIMIT_SECONDS, PROGRESS_SECONDS, duration, step_work

    work = step_work(spec, device)
    if work is None or work.seconds <= PROGRESS_SECONDS:
        return
    if work.seconds > LIMIT_SECONDS and not allow_long:
        raise UsageError(f"{what} takes ~{duration(work.seconds)} on {device} ({work.parts()}), past the "
                         f"{LIMIT_SECONDS // 60}-minute limit: use predict or --allow-long")
    if notice:
        print(f"{what} takes ~{duration(work.seconds)} on {device} ({work.parts()})...",
              file=sys.stderr)


def check_points(grid, device: str, allow_long: bool) -> None:
    """check_work on every point of a sweep of `grid` (a profiler.experiments.grid.Grid) on `device`, before any is
    measured: a point past the limit refuses the whole sweep, naming it."""
    from profiler.experiments.grid import expand

    for point in expand(grid, device):
        check_work(point.spec, point.device, allow_long, f"point {point.label}", notice=False)
