"""A step spec: the model (model.config.ModelConfig), its training setup (model.setup.Setup) and the batch. No torch.

The device a step runs on is no part of it: measure() takes it beside the spec. A result row stores a spec as a
flat "config" dict of the model's and the setup's fields (the optimizer apart, at the row's top level):
StepSpec.flat() writes it and StepSpec.from_row() reads it back (StepSpec.of() builds a spec from the fields by name).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from model.config import BUILTIN, ModelConfig
from model.setup import OPTIONS, Setup

MODEL_FIELDS = tuple(model_field.name for model_field in dataclasses.fields(ModelConfig))


@dataclass(frozen=True)
class StepSpec:
    """One training step: `model` trained with `setup` on batches of `batch_size` sequences (the step's batch, of
    setup.micro_batches micro-batches; a numpy array of batch sizes where the exact model evaluates many).

    Holds the checks that need both the model and the setup: tensor_parallel divides the heads, the key/value heads
    and d_ff (and, with sequence_parallel, the context length) and leaves every rank rows of the embeddings, dropout
    is not simulated with sdpa-math, the fused attention backends need a head size divisible by 8, and flash 16-bit
    dtypes (or autocast) and head sizes up to 256 (the built-in model; a user's model meets them as it runs), a
    user's model runs on one device.
    """

    model: ModelConfig
    setup: Setup = field(default_factory=Setup)
    batch_size: Any = 1

    def __post_init__(self) -> None:
        model, setup = self.model, self.setup
        if model.source != BUILTIN and setup.shard != "none":
            raise ValueError(f"shard {setup.shard} splits the built-in blocks; model {model.source} runs on one device")
        if model.source != BUILTIN:
            return  # what the user's code does with the options is run and checked as it runs (model.cuda_kernels)
        t = setup.tensor_parallel
        split = {"num_heads": model.num_heads, "kv_heads": model.kv_heads, "d_ff": model.d_ff}
        if setup.sequence_parallel:
            split["context_length"] = model.context_length
        for name, size in split.items():
            if size % t:
                raise ValueError(f"tensor_parallel={t} does not divide {name}={size}"
                                 + (" (sequence parallelism splits the sequence)" if name == "context_length" else ""))
        rows = {"vocab_size": model.vocab_size, **({"context_length": model.context_length}
                                                   if model.positional == "learned" else {})}
        for name, size in rows.items():  # split as torch.chunk splits: ⌈size/t⌉ rows a rank, the last ones fewer
            if -(-size // t) * (t - 1) >= size:
                raise ValueError(f"tensor_parallel={t} leaves a rank without rows of the embedding of {name}={size} "
                                 f"(split in chunks of ⌈{size}/{t}⌉ = {-(-size // t)}): FSDP2's reduce-scatter "
                                 f"(torch._chunk_cat) refuses an empty shard")
        if model.dropout and setup.attention == "sdpa-math":
            raise ValueError("dropout with attention='sdpa-math' is not simulated: the math kernel's at::dropout "
                             "keeps a bool mask on CUDA and noise of the input's dtype on meta and CPU")
        if setup.attention in ("sdpa-flash", "sdpa-efficient") and model.head_dim % 8:
            raise ValueError(f"attention={setup.attention!r} needs a head size divisible by 8, got {model.head_dim} "
                             "(F.scaled_dot_product_attention pads other sizes, which is not simulated)")
        if setup.attention == "sdpa-flash" and ((setup.dtype == "float32" and setup.autocast == "none")
                                                or model.head_dim > 256):
            raise ValueError(f"attention='sdpa-flash' runs 16-bit dtypes (or autocast) with head sizes up to 256, "
                             f"got {setup.dtype} and {model.head_dim}")

    @classmethod
    def of(cls, batch_size: Any = 1, **fields: Any) -> "StepSpec":
        """The spec of the model's and the setup's fields by name (a result row's "config", its "optimizer")."""
        unknown = set(fields) - set(MODEL_FIELDS) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} of a step spec")
        return cls(ModelConfig(**{name: value for name, value in fields.items() if name in MODEL_FIELDS}),
                   Setup(**{name: value for name, value in fields.items() if name in OPTIONS}), batch_size)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "StepSpec":
        """The spec of a result row: its flat "config", "optimizer" and "batch_size" (1 where it has none)."""
        return cls.of(batch_size=row.get("batch_size", 1), optimizer=row.get("optimizer", "foreach"), **row["config"])

    def replace(self, **changes: Any) -> "StepSpec":
        """A copy with `changes` to the model's fields (ModelConfig.replace: the defaults follow), the setup's
        fields and batch_size."""
        model_changes = {name: value for name, value in changes.items() if name in MODEL_FIELDS}
        setup_changes = {name: value for name, value in changes.items() if name in OPTIONS}
        unknown = set(changes) - set(model_changes) - set(setup_changes) - {"batch_size"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} of a step spec")
        return StepSpec(self.model.replace(**model_changes) if model_changes else self.model,
                        dataclasses.replace(self.setup, **setup_changes) if setup_changes else self.setup,
                        changes.get("batch_size", self.batch_size))

    def value(self, name: str) -> Any:
        """The model's or the setup's field `name`."""
        return getattr(self.setup, name) if name in OPTIONS else getattr(self.model, name)

    def flat(self) -> dict[str, Any]:
        """The model's fields and the setup's but the optimizer, name last: a result row's "config"."""
        model = self.model.to_dict()
        name = model.pop("name")
        setup = self.setup.to_dict()
        setup.pop("optimizer")
        return {**model, **setup, "name": name}

    @property
    def micro_batch_size(self) -> int:
        """The batch of one micro-batch; batch_size must be a multiple of micro_batches."""
        if self.batch_size % self.setup.micro_batches:
            raise ValueError(f"batch size {self.batch_size} is not divisible by "
                             f"micro_batches={self.setup.micro_batches}")
        return self.batch_size // self.setup.micro_batches

    def setup_text(self) -> str:
        """'batch 8 (4 micro-batches of 2), float32, checkpointing full, zero_grad zeros': the step's setup,
        options at their defaults left out."""
        batch = f"batch {self.batch_size}"
        if self.setup.micro_batches > 1:
            batch += f" ({self.setup.micro_batches} micro-batches of {self.micro_batch_size})"
        return f"{batch}, {self.options_text(micro_batches=False)}"

    def options_text(self, micro_batches: bool = True) -> str:
        """'float32, attention sdpa-flash, checkpointing full': the dtype and the options not at their default
        (micro-batches as 'k micro-batches', unless `micro_batches` is False); the optimizer is left out."""
        model, setup = self.model, self.setup
        defaults = model.defaults()
        options = [f"{name} {self.value(name)}" for name, default in (
                   ("arch", "reference"), ("dropout", defaults["dropout"]), ("kv_heads", defaults["kv_heads"]),
                   ("autocast", "none"), ("positional", defaults["positional"]), ("attention", "explicit"),
                   ("checkpointing", "none"), ("zero_grad", "none")) if self.value(name) != default]
        if micro_batches and setup.micro_batches > 1:
            options.append(f"{setup.micro_batches} micro-batches")
        if setup.shard != "none":
            options.append(f"{setup.shard} on {setup.world_size} ranks"
                           + ("" if setup.reshard_after_forward else " without resharding after forward"))
        if setup.tensor_parallel > 1:
            options.append(f"tensor parallel {setup.tensor_parallel}"
                           + (" with sequence parallelism" if setup.sequence_parallel else ""))
        return ", ".join([setup.dtype, *options])
