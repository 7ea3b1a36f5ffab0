"""The one configuration dataclass and the presets. No torch import: analytic/ uses this too."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ARCH_OPTIONS = ("reference", "gpt2", "llama")
POSITIONAL_OPTIONS = ("learned", "rope", "none")
# The positional options each architecture allows, its default first: GPT-2 learns its positions, Llama rotates.
ARCH_POSITIONAL = {"reference": POSITIONAL_OPTIONS, "gpt2": ("learned",), "llama": ("rope",)}
DEFAULT_DROPOUT = {"reference": 0.0, "gpt2": 0.1, "llama": 0.0}
ATTENTION_OPTIONS = ("explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient")
CHECKPOINTING_OPTIONS = ("none", "full", "selective")
ZERO_GRAD_OPTIONS = ("none", "zeros")
AUTOCAST_OPTIONS = ("none", "bfloat16")  # forward and loss under torch.autocast in this dtype (model.autocast)
SHARD_OPTIONS = ("none", "fsdp2", "ddp")  # data parallelism over world_size ranks: none (one device), FSDP2, DDP
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and options of the Transformer LM and of its training step.

    arch: the block (model.transformer): 'reference' (the card's: RMSNorm, SiLU FFN, no biases, untied head),
    'gpt2' (LayerNorm with bias, GELU (tanh), biases on every linear layer, dropout, tied embedding and LM head,
    learned positions) or 'llama' (RMSNorm, SwiGLU FFN, RoPE, no biases, untied head, grouped-query attention
    with kv_heads key/value heads). dropout: the probability of gpt2's dropouts (default 0.1; the other archs
    have none). kv_heads: key/value heads, dividing num_heads (default num_heads; fewer is llama only).
    d_ff defaults to 4·d_model, for llama to Llama's 256·⌈(8/3·d_model)/256⌉ (11008 at 4096).
    positional: 'learned' (GPT-2's position embedding), 'rope' or 'none'.
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
    """

    vocab_size: int
    context_length: int
    num_layers: int
    d_model: int
    num_heads: int
    d_ff: int | None = None
    arch: str = "reference"
    positional: str | None = None  # None: the arch's (ARCH_POSITIONAL)
    dropout: float | None = None  # None: the arch's (DEFAULT_DROPOUT)
    kv_heads: int | None = None  # None: num_heads
    attention: str = "explicit"
    dtype: str = "float32"
    checkpointing: str = "none"
    micro_batches: int = 1
    zero_grad: str = "none"
    autocast: str = "none"
    shard: str = "none"
    world_size: int = 1
    reshard_after_forward: bool = True
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.arch not in ARCH_OPTIONS:
            raise ValueError(f"arch must be one of {ARCH_OPTIONS}, got {self.arch!r}")
        for name, default in self._defaults().items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        for name in ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff", "micro_batches",
                     "kv_heads", "world_size"):
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
        if self.positional not in ARCH_POSITIONAL[self.arch]:
            raise ValueError(f"arch {self.arch!r} has positional {' or '.join(ARCH_POSITIONAL[self.arch])}, "
                             f"got {self.positional!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if self.dropout and self.arch != "gpt2":
            raise ValueError(f"arch {self.arch!r} has no dropout, got dropout={self.dropout}")
        if self.dropout and self.attention == "sdpa-math":
            raise ValueError("dropout with attention='sdpa-math' is not simulated: the math kernel's at::dropout "
                             "keeps a bool mask on CUDA and noise of the input's dtype on meta and CPU")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"kv_heads={self.kv_heads} does not divide num_heads={self.num_heads}")
        if self.kv_heads != self.num_heads and self.arch != "llama":
            raise ValueError(f"grouped-query attention (kv_heads < num_heads) is arch 'llama' only, got "
                             f"arch {self.arch!r} with kv_heads={self.kv_heads}")
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
        if self.shard not in SHARD_OPTIONS:
            raise ValueError(f"shard must be one of {SHARD_OPTIONS}, got {self.shard!r}")
        if self.shard == "none" and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} needs a shard strategy (shard='fsdp2' or 'ddp'), got "
                             f"shard='none'")
        if not isinstance(self.reshard_after_forward, bool):
            raise ValueError(f"reshard_after_forward must be true or false, got {self.reshard_after_forward!r}")
        if not self.reshard_after_forward and self.shard != "fsdp2":
            raise ValueError("reshard_after_forward=False is an FSDP2 option: give shard='fsdp2'")
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

    def _defaults(self) -> dict:
        """The values that None stands for, given the arch and sizes."""
        d_ff = 256 * -(-8 * self.d_model // (3 * 256)) if self.arch == "llama" else 4 * self.d_model
        return {"d_ff": d_ff, "positional": ARCH_POSITIONAL[self.arch][0], "dropout": DEFAULT_DROPOUT[self.arch],
                "kv_heads": self.num_heads}

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def kv_width(self) -> int:
        """K = kv_heads · head_dim: the width of the key and value projections (d_model without GQA)."""
        return self.kv_heads * self.head_dim

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
        return f"{batch}, {self.options_text(micro_batches=False)}"

    def options_text(self, micro_batches: bool = True) -> str:
        """'float32, attention sdpa-flash, checkpointing full': the dtype and the options not at their default
        (micro-batches as 'k micro-batches', unless `micro_batches` is False)."""
        defaults = self._defaults()
        options = [f"{name} {getattr(self, name)}" for name, default in (
                   ("arch", "reference"), ("dropout", defaults["dropout"]), ("kv_heads", defaults["kv_heads"]),
                   ("autocast", "none"), ("positional", defaults["positional"]), ("attention", "explicit"),
                   ("checkpointing", "none"), ("zero_grad", "none")) if getattr(self, name) != default]
        if micro_batches and self.micro_batches > 1:
            options.append(f"{self.micro_batches} micro-batches")
        if self.shard != "none":
            options.append(f"{self.shard} on {self.world_size} ranks"
                           + ("" if self.reshard_after_forward else " without resharding after forward"))
        return ", ".join([self.dtype, *options])

    def replace(self, **changes) -> "ModelConfig":
        """A copy with `changes`; the fields left at their default (d_ff, positional, dropout, kv_heads) and not
        in `changes` take the new config's default (the new arch's, 4·the new d_model, the new num_heads)."""
        changes = {**{name: None for name, default in self._defaults().items() if getattr(self, name) == default},
                   **changes}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _gpt2(name: str, num_layers: int, d_model: int, num_heads: int, arch: str = "reference") -> ModelConfig:
    return ModelConfig(vocab_size=50257, context_length=1024, num_layers=num_layers, d_model=d_model,
                       num_heads=num_heads, arch=arch, name=name)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(vocab_size=256, context_length=32, num_layers=2, d_model=64, num_heads=4, name="tiny"),
    "mini": ModelConfig(vocab_size=1000, context_length=64, num_layers=4, d_model=128, num_heads=4, name="mini"),
    "small-cpu": ModelConfig(vocab_size=4096, context_length=128, num_layers=4, d_model=256, num_heads=8,
                             name="small-cpu"),
    "gpt2-small": _gpt2("gpt2-small", 12, 768, 12),
    "gpt2-medium": _gpt2("gpt2-medium", 24, 1024, 16),
    "gpt2-large": _gpt2("gpt2-large", 36, 1280, 20),
    "gpt2-xl": _gpt2("gpt2-xl", 48, 1600, 25),
    # The published models (Hugging Face configs): GPT-2 as released (openai-community/gpt2, -medium, -large,
    # -xl), Llama 2 7B (meta-llama/Llama-2-7b-hf) and TinyLlama 1.1B (TinyLlama/TinyLlama-1.1B-...-3T).
    "hf-gpt2": _gpt2("hf-gpt2", 12, 768, 12, "gpt2"),
    "hf-gpt2-medium": _gpt2("hf-gpt2-medium", 24, 1024, 16, "gpt2"),
    "hf-gpt2-large": _gpt2("hf-gpt2-large", 36, 1280, 20, "gpt2"),
    "hf-gpt2-xl": _gpt2("hf-gpt2-xl", 48, 1600, 25, "gpt2"),
    "llama2-7b": ModelConfig(vocab_size=32000, context_length=4096, num_layers=32, d_model=4096, num_heads=32,
                             d_ff=11008, arch="llama", name="llama2-7b"),
    "tinyllama-1.1b": ModelConfig(vocab_size=32000, context_length=2048, num_layers=22, d_model=2048,
                                  num_heads=32, kv_heads=4, d_ff=5632, arch="llama", name="tinyllama-1.1b"),
}

SCALED_DOWN_PRESETS = ("tiny", "mini", "small-cpu")  # for tests and CPU runs; the others are full-size models


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
