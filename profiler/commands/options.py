"""Options shared by the commands: the model's size and setup, the device, positive integers. No torch import."""
from __future__ import annotations

import argparse

from model.config import (ARCH_OPTIONS, ATTENTION_OPTIONS, AUTOCAST_OPTIONS, CHECKPOINTING_OPTIONS, DTYPE_BYTES,
                          POSITIONAL_OPTIONS, PRESETS, SHARD_OPTIONS, ZERO_GRAD_OPTIONS, ModelConfig, preset)
from model.vocabulary import DEVICES, OPTIMIZERS
from profiler.errors import UsageError

SIZE_FIELDS = ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff")
SETUP_FIELDS = {"arch": ARCH_OPTIONS, "positional": POSITIONAL_OPTIONS, "attention": ATTENTION_OPTIONS,
                "dtype": tuple(DTYPE_BYTES),
                "checkpointing": CHECKPOINTING_OPTIONS, "zero_grad": ZERO_GRAD_OPTIONS, "autocast": AUTOCAST_OPTIONS,
                "shard": SHARD_OPTIONS}


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


def add_config_arguments(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    """--preset or explicit sizes, the setup options, --batch-size (with `batch`) and --optimizer."""
    group = parser.add_argument_group("model size (a --preset, or sizes that override it)")
    group.add_argument("--preset", help=", ".join(PRESETS))
    for name in SIZE_FIELDS:
        group.add_argument("--" + name.replace("_", "-"), type=int, dest=name)
    for name, choices in SETUP_FIELDS.items():
        group.add_argument("--" + name.replace("_", "-"), choices=choices, dest=name)
    group.add_argument("--kv-heads", type=positive_int, dest="kv_heads",
                       help="key/value heads, dividing --num-heads (grouped-query attention, arch llama; "
                            "default: as many as heads)")
    group.add_argument("--dropout", type=probability, dest="dropout",
                       help="probability of gpt2's dropouts (default 0.1 for arch gpt2)")
    group.add_argument("--micro-batches", type=positive_int, dest="micro_batches",
                       help="gradient accumulation: forward and backward on this many equal slices of the batch, "
                            "then one AdamW step (default 1)")
    group.add_argument("--world-size", type=positive_int, dest="world_size",
                       help="ranks of a sharded step (--shard fsdp2 or ddp; simulated on meta at any size, the rank "
                            "that holds the most measured)")
    group.add_argument("--reshard-after-forward", action=argparse.BooleanOptionalAction,
                       dest="reshard_after_forward",
                       help="FSDP2: free each block's gathered parameters after its forward (default) or keep "
                            "them until backward (--no-reshard-after-forward)")
    if batch:
        parser.add_argument("--batch-size", type=positive_int, default=1,
                            help="the step's batch (with --micro-batches k, k slices of batch-size / k)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="foreach",
                        help="AdamW implementation (default foreach, as on CUDA)")


def add_device_argument(parser: argparse.ArgumentParser, help_text: str = "") -> None:
    """--device auto (the default: cuda when torch sees a GPU, else meta), meta, cpu or cuda."""
    parser.add_argument("--device", choices=("auto",) + DEVICES, default="auto",
                        help=help_text or "auto (default): cuda when torch sees a GPU, else meta (simulated)")


def config_from_args(args: argparse.Namespace, sharded: bool = False) -> ModelConfig:
    """The config the options give; `sharded`: the command handles sharded steps (others refuse --shard)."""
    sizes = {name: getattr(args, name) for name in SIZE_FIELDS if getattr(args, name, None) is not None}
    options = {name: getattr(args, name) for name in (*SETUP_FIELDS, "micro_batches", "kv_heads", "dropout",
                                                      "world_size", "reshard_after_forward")
               if getattr(args, name, None) is not None}
    if not sharded and options.get("shard", "none") != "none":
        raise UsageError(f"--shard {options['shard']} is taken by `measure`, `max-batch` and `predict`; this "
                         "command describes one device")
    if args.preset:
        return preset(args.preset).replace(**sizes, **options)
    missing = [f"--{n.replace('_', '-')}" for n in SIZE_FIELDS[:5] if n not in sizes]
    if missing:
        raise UsageError(f"give --preset or all of the sizes; missing {' '.join(missing)}")
    return ModelConfig(**sizes, **options)


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
