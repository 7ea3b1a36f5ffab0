"""The one configuration dataclass and the presets. No torch import: analytic/ uses this too."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

POSITIONAL_OPTIONS = ("learned", "rope", "none")
ATTENTION_OPTIONS = ("explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient")
CHECKPOINTING_OPTIONS = ("none", "full", "selective")
ZERO_GRAD_OPTIONS = ("none", "zeros")
AUTOCAST_OPTIONS = ("none", "bfloat16")  # forward and loss under torch.autocast in this dtype (model.autocast)  # optimizer.zero_grad(set_to_none=True) or (set_to_none=False)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and options of the reference Transformer LM and of its training step.

    d_ff defaults to 4·d_model. positional: 'learned' (GPT-2's position embedding), 'rope' or 'none'.
    attention: 'explicit' (QKᵀ, scale, causal mask, softmax, weighted sum: every textbook op exists) or one
    backend of F.scaled_dot_product_attention: 'sdpa-math', 'sdpa-flash' (16-bit dtypes, head size <= 256),
    'sdpa-efficient' (model.transformer.attend); the fused two need a head size divisible by 8. dtype: the dtype
    of parameters, activations and optimizer state.
    checkpointing: 'none', 'full' or 'selective' activation recomputation of every block (model.transformer).
    micro_batches: a step runs forward and backward on micro_batches equal slices of the batch (the loss of each
    divided by micro_batches), gradients accumulating, then one AdamW step. zero_grad: how the step ends,
    'none' (zero_grad(set_to_none=True): gradients freed) or 'zeros' (set_to_none=False: kept, zeroed in place).
    autocast: 'none', or 'bfloat16' for mixed precision: forward and loss under torch.autocast (emulated on meta,
    model.autocast) with float32 parameters, gradients and AdamW state ("amp-bf16").
    """

    vocab_size: int
    context_length: int
    num_layers: int
    d_model: int
    num_heads: int
    d_ff: int | None = None
    positional: str = "learned"
    attention: str = "explicit"
    dtype: str = "float32"
    checkpointing: str = "none"
    micro_batches: int = 1
    zero_grad: str = "none"
    autocast: str = "none"
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        for name in ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff", "micro_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}"
            )
        if self.positional not in POSITIONAL_OPTIONS:
            raise ValueError(f"positional must be one of {POSITIONAL_OPTIONS}, got {self.positional!r}")
        if self.attention not in ATTENTION_OPTIONS:
            raise ValueError(f"attention must be one of {ATTENTION_OPTIONS}, got {self.attention!r}")
        if self.checkpointing not in CHECKPOINTING_OPTIONS:
            raise ValueError(f"checkpointing must be one of {CHECKPOINTING_OPTIONS}, got {self.checkpointing!r}")
        if self.zero_grad not in ZERO_GRAD_OPTIONS:
            raise ValueError(f"zero_grad must be one of {ZERO_GRAD_OPTIONS}, got {self.zero_grad!r}")
        if self.autocast not in AUTOCAST_OPTIONS:
            raise ValueError(f"autocast must be one of {AUTOCAST_OPTIONS}, got {self.autocast!r}")
        if self.autocast != "none" and self.dtype != "float32":
            raise ValueError(f"autocast={self.autocast!r} is mixed precision over float32 parameters, "
                             f"got dtype={self.dtype!r}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"dtype must be one of {tuple(DTYPE_BYTES)}, got {self.dtype!r}")
        if self.attention in ("sdpa-flash", "sdpa-efficient") and self.head_dim % 8:
            raise ValueError(f"attention={self.attention!r} needs a head size divisible by 8, got {self.head_dim} "
                             "(F.scaled_dot_product_attention pads other sizes, which is not simulated)")
        if self.attention == "sdpa-flash" and ((self.dtype == "float32" and self.autocast == "none")
                                               or self.head_dim > 256):
            raise ValueError(f"attention='sdpa-flash' runs 16-bit dtypes (or autocast) with head sizes up to 256, "
                             f"got {self.dtype} and {self.head_dim}")
        if self.positional == "rope" and self.head_dim % 2:
            raise ValueError(f"positional='rope' needs an even head dimension, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def micro_batch_size(self, batch_size: int) -> int:
        """The batch of one micro-batch; batch_size must be a multiple of micro_batches."""
        if batch_size % self.micro_batches:
            raise ValueError(f"batch size {batch_size} is not divisible by micro_batches={self.micro_batches}")
        return batch_size // self.micro_batches

    def setup_text(self, batch_size: int) -> str:
        """'batch 8 (4 micro-batches of 2), float32, checkpointing full, zero_grad zeros': the step's setup,
        options at their defaults left out."""
        batch = f"batch {batch_size}"
        if self.micro_batches > 1:
            batch += f" ({self.micro_batches} micro-batches of {self.micro_batch_size(batch_size)})"
        return f"{batch}, {self.options_text()}"

    def options_text(self) -> str:
        """'float32, attention sdpa-flash, checkpointing full': the dtype and the options not at their default
        (micro-batches as 'k micro-batches')."""
        options = [f"{name} {getattr(self, name)}" for name, default in (("autocast", "none"),
                   ("positional", "learned"), ("attention", "explicit"), ("checkpointing", "none"),
                   ("zero_grad", "none")) if getattr(self, name) != default]
        if self.micro_batches > 1:
            options.append(f"{self.micro_batches} micro-batches")
        return ", ".join([self.dtype, *options])

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _gpt2(name: str, num_layers: int, d_model: int, num_heads: int) -> ModelConfig:
    return ModelConfig(vocab_size=50257, context_length=1024, num_layers=num_layers, d_model=d_model,
                       num_heads=num_heads, name=name)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(vocab_size=256, context_length=32, num_layers=2, d_model=64, num_heads=4, name="tiny"),
    "mini": ModelConfig(vocab_size=1000, context_length=64, num_layers=4, d_model=128, num_heads=4, name="mini"),
    "small-cpu": ModelConfig(vocab_size=4096, context_length=128, num_layers=4, d_model=256, num_heads=8,
                             name="small-cpu"),
    "gpt2-small": _gpt2("gpt2-small", 12, 768, 12),
    "gpt2-medium": _gpt2("gpt2-medium", 24, 1024, 16),
    "gpt2-large": _gpt2("gpt2-large", 36, 1280, 20),
    "gpt2-xl": _gpt2("gpt2-xl", 48, 1600, 25),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
