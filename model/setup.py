"""The training setup of a step, apart from the model: its options in one table, and the frozen Setup. No torch.

SETUP_OPTIONS is the one list of the setup's options: the CLI's flags and choices (profiler.commands.options),
the grid keys and option axes (profiler.experiments.grid), the JSON fields of a result row and the formula sets'
SETUP (analytic.formula_sets) all read it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from model.vocabulary import OPTIMIZERS

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Option:
    """One option of the setup: its name (a Setup field), the values it allows (a tuple of choices, or the type
    int for a positive integer, bool for true or false), its default and a one-line help."""

    name: str
    values: tuple | type
    default: Any
    help: str

    @property
    def choices(self) -> tuple | None:
        """The allowed values where they are a list of choices, else None."""
        return self.values if isinstance(self.values, tuple) else None

    def check(self, value: Any) -> None:
        """One ValueError naming the option where `value` is not allowed."""
        if self.values is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
        elif self.values is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be a string, got {value!r}")
        elif self.values is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"{self.name} must be positive, got {value}")
        elif value not in self.values:
            raise ValueError(f"{self.name} must be one of {self.values}, got {value!r}")


SETUP_OPTIONS = (
    Option("attention", ("explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient"), "explicit",
           "explicit (QKᵀ, scale, causal mask, softmax, weighted sum) or a backend of "
           "F.scaled_dot_product_attention"),
    Option("dtype", tuple(DTYPE_BYTES), "float32", "the dtype of parameters, activations and optimizer state"),
    Option("checkpointing", ("none", "full", "selective"), "none", "activation recomputation of every block"),
    Option("micro_batches", int, 1, "gradient accumulation: forward and backward on this many equal slices of the "
                                    "batch, then one AdamW step"),
    Option("zero_grad", ("none", "zeros"), "none",
           "how the step ends: gradients freed (none) or kept and zeroed in place (zeros)"),
    Option("autocast", ("none", "bfloat16"), "none",
           "mixed precision: forward and loss under torch.autocast over float32 parameters"),
    Option("shard", ("none", "fsdp2", "ddp"), "none",
           "data parallelism over --world-size ranks: none (one device), FSDP2 or DDP"),
    Option("world_size", int, 1, "ranks of a sharded step (--shard fsdp2 or ddp; simulated on meta at any size, "
                                 "the rank that holds the most measured)"),
    Option("reshard_after_forward", bool, True,
           "FSDP2: free each block's gathered parameters after its forward (default) or keep them until backward "
           "(--no-reshard-after-forward)"),
    Option("tensor_parallel", int, 1, "tensor parallelism: the built-in blocks split over t ranks of each "
                                      "data-parallel group, torchtitan's plan (--shard fsdp2; --world-size a "
                                      "multiple of t)"),
    Option("sequence_parallel", bool, False, "with --tensor-parallel t > 1: norms, dropouts and residuals sharded "
                                             "on the sequence (Korthikanti et al.; torchtitan's plan)"),
    Option("optimizer", OPTIMIZERS, "foreach", "the AdamW implementation (foreach: what CUDA runs by default)"),
    Option("optimizer_class", str, "", "FILE.py:NAME or package.module:NAME: your own torch.optim.Optimizer "
                                       "subclass in place of torch's AdamW, built with AdamW's lr and weight decay"),
)
OPTIONS = {option.name: option for option in SETUP_OPTIONS}
# A value that stands for every value of a field, where a formula set declares the setups it describes
# (analytic.formula_sets: an int field's, such as tensor_parallel, where no tuple lists them all)
ANY = "any"


@dataclass(frozen=True)
class Setup:
    """How a step trains its model (the options of SETUP_OPTIONS).

    attention: 'explicit' (QKᵀ, scale, causal mask, softmax, weighted sum: every textbook op exists) or one
    backend of F.scaled_dot_product_attention: 'sdpa-math', 'sdpa-flash' (16-bit dtypes, head size <= 256),
    'sdpa-efficient' (model.transformer.attend); the fused two need a head size divisible by 8. dtype: the dtype
    of parameters, activations and optimizer state.
    checkpointing: 'none', 'full' or 'selective' activation recomputation of every block (model.transformer).
    micro_batches: a step runs forward and backward on micro_batches equal slices of the batch (the loss of each
    divided by micro_batches), gradients accumulating, then one AdamW step. zero_grad: how the step ends,
    'none' (zero_grad(set_to_none=True): gradients freed) or 'zeros' (set_to_none=False: kept, zeroed in place).
    autocast: 'none', or 'bfloat16' for mixed precision: forward and loss under torch.autocast (emulated on meta,
    model.autocast) with float32 parameters, gradients and AdamW state ("amp-bf16"); under FSDP2 the same
    precision is FSDP2's MixedPrecisionPolicy instead (bf16 parameters for compute, fp32 gradient reduction).
    shard: 'none' (one device), 'fsdp2': torch.distributed's fully_shard on every block and on the model, over
    world_size ranks (torch.distributed.fsdp; profiler.measuring.sharded), each rank with its own batch, or
    'ddp': data parallelism with whole parameters on every rank, as torch's replicate does it on FSDP2's engine
    (torch.distributed._composable.replicate_with_fsdp, on every block and on the model: gradients all-reduced
    block by block in backward; not DistributedDataParallel's bucketed C++ reducer);
    reshard_after_forward: FSDP2's option of that name (True frees each block's gathered parameters after its
    forward and gathers them again for backward; False keeps them until backward).
    tensor_parallel: t, the ranks each block is split over by tensor parallelism (shard 'fsdp2' only, as torchtitan
    composes them; it refuses DDP on a 2-D mesh): the world_size ranks form a 2-D mesh ("dp", "tp") of
    world_size / t by t, the blocks are split on "tp" (column-wise q, k, v, w1, w3 and row-wise out_proj, w2; the
    vocabulary split in the embedding and the LM head, the loss computed on the split logits) and fully_shard runs
    on "dp" (model.tensor_parallel); at world_size = t too, over a one-rank "dp" (where torchtitan would leave FSDP2
    out).
    sequence_parallel: with t > 1, the norms, dropouts and residual stream between the blocks' split layers are
    split on the sequence too (torchtitan's SequenceParallel; Korthikanti et al.'s sequence parallelism).
    optimizer: the AdamW implementation (model.vocabulary.OPTIMIZERS: forloop, foreach, fused).
    optimizer_class: '' (torch.optim.AdamW as `optimizer` says), or a user's torch.optim.Optimizer subclass,
    'FILE.py:NAME' or 'package.module:NAME' (model.implementations), built with AdamW's lr and weight decay.
    """

    attention: str = "explicit"
    dtype: str = "float32"
    checkpointing: str = "none"
    micro_batches: int = 1
    zero_grad: str = "none"
    autocast: str = "none"
    shard: str = "none"
    world_size: int = 1
    reshard_after_forward: bool = True
    tensor_parallel: int = 1
    sequence_parallel: bool = False
    optimizer: str = "foreach"
    optimizer_class: str = ""

    def __post_init__(self) -> None:
        for option in SETUP_OPTIONS:
            option.check(getattr(self, option.name))
        if self.optimizer_class:
            where, colon, name = self.optimizer_class.rpartition(":")
            if not colon or not where or not name.isidentifier():
                raise ValueError(f"optimizer_class must be FILE.py:NAME or package.module:NAME, got "
                                 f"{self.optimizer_class!r}")
        if self.autocast != "none" and self.dtype != "float32":
            raise ValueError(f"autocast={self.autocast!r} is mixed precision over float32 parameters, "
                             f"got dtype={self.dtype!r}")
        if self.shard == "none" and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} needs a shard strategy (shard='fsdp2' or 'ddp'), got "
                             f"shard='none'")
        if not self.reshard_after_forward and self.shard != "fsdp2":
            raise ValueError("reshard_after_forward=False is an FSDP2 option: give shard='fsdp2'")
        if self.tensor_parallel > 1 and self.shard != "fsdp2":
            raise ValueError(f"tensor_parallel={self.tensor_parallel} runs on FSDP2's 2-D mesh: give shard='fsdp2', "
                             f"got shard={self.shard!r}")
        if self.world_size % self.tensor_parallel:
            raise ValueError(f"world_size={self.world_size} is not a multiple of tensor_parallel="
                             f"{self.tensor_parallel}")
        if self.sequence_parallel and self.tensor_parallel == 1:
            raise ValueError("sequence_parallel splits what tensor parallelism replicates: give tensor_parallel > 1")

    @property
    def optimizer_text(self) -> str:
        """'AdamW foreach', or the user's optimizer class ('optimizer my.py:AdamW')."""
        return f"optimizer {self.optimizer_class}" if self.optimizer_class else f"AdamW {self.optimizer}"

    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

