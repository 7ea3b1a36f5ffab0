"""The model of a step (its sizes and block) and the presets. No torch import: analytic/ uses this too.

How it trains is model.setup.Setup; the model, the setup and the batch together are model.spec.StepSpec."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ARCH_OPTIONS = ("reference", "gpt2", "llama")
POSITIONAL_OPTIONS = ("learned", "rope", "none")
# The positional options each architecture allows, its default first: GPT-2 learns its positions, Llama rotates.
ARCH_POSITIONAL = {"reference": POSITIONAL_OPTIONS, "gpt2": ("learned",), "llama": ("rope",)}
DEFAULT_DROPOUT = {"reference": 0.0, "gpt2": 0.1, "llama": 0.0}

BUILTIN = "builtin"
HF_ARCHS = {"hf:gpt2": "gpt2", "hf:llama": "llama"}


def source_kind(source: str) -> str:
    """'builtin', 'hf' (hf:gpt2, hf:llama, hf:PATH.json), 'file' (FILE.py:NAME) or 'module' (package.module:NAME);
    one ValueError for anything else."""
    if not isinstance(source, str) or not source:
        raise ValueError(f"model must be builtin, FILE.py:NAME, package.module:NAME or hf:gpt2|llama|PATH.json, "
                         f"got {source!r}")
    if source == BUILTIN:
        return "builtin"
    if source.startswith("hf:"):
        if source in HF_ARCHS or source.endswith(".json"):
            return "hf"
        raise ValueError(f"model {source}: a Hugging Face model is hf:gpt2, hf:llama or hf:PATH/config.json")
    where, colon, name = source.rpartition(":")
    if not colon or not where or not name.isidentifier():
        raise ValueError(f"model {source}: give FILE.py:NAME or package.module:NAME (NAME a callable that returns "
                         "the model)")
    if where.endswith(".py"):
        return "file"
    if all(part.isidentifier() for part in where.split(".")):
        return "module"
    raise ValueError(f"model {source}: {where!r} is neither a .py file nor a module name")


def source_arch(source: str) -> str | None:
    """The arch a Hugging Face source implies (hf:gpt2 -> 'gpt2'); None for the others (a config file's is read
    with its sizes, model.implementations)."""
    return HF_ARCHS.get(source)



@dataclass(frozen=True)
class ModelConfig:
    """Sizes and block of the Transformer LM (how it trains: model.setup.Setup).

    arch: the block (model.transformer): 'reference' (the reference block: RMSNorm, SiLU FFN, no biases, untied
    head), 'gpt2' (LayerNorm with bias, GELU (tanh), biases on every linear layer, dropout, tied embedding and LM
    head, learned positions) or 'llama' (RMSNorm, SwiGLU FFN, RoPE, no biases, untied head, grouped-query
    attention with kv_heads key/value heads). dropout: the probability of gpt2's dropouts (default 0.1; the other
    archs have none). kv_heads: key/value heads, dividing num_heads (default num_heads; fewer is llama only).
    d_ff defaults to 4·d_model, for llama to Llama's 256·⌈(8/3·d_model)/256⌉ (11008 at 4096).
    positional: 'learned' (GPT-2's position embedding), 'rope' or 'none'.
    source: the implementation (model.implementations): 'builtin' (model.transformer's block of `arch`), a user's
    factory 'FILE.py:NAME' or 'package.module:NAME', or a Hugging Face model 'hf:gpt2', 'hf:llama',
    'hf:PATH/config.json'. A user's model declares with `arch` which block it has (which formula sets describe
    it), and takes dropout and kv_heads as it chooses; a Hugging Face model's arch is its model type's.
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
    source: str = BUILTIN
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.arch not in ARCH_OPTIONS:
            raise ValueError(f"arch must be one of {ARCH_OPTIONS}, got {self.arch!r}")
        for name, default in self.defaults().items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        for name in ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff", "kv_heads"):
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
        source_kind(self.source)
        if self.source.startswith("hf:") and source_arch(self.source) not in (None, self.arch):
            raise ValueError(f"model {self.source} has arch {source_arch(self.source)!r}, got arch {self.arch!r}")
        builtin = self.source == BUILTIN
        if self.dropout and self.arch != "gpt2" and builtin:
            raise ValueError(f"arch {self.arch!r} has no dropout, got dropout={self.dropout}")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"kv_heads={self.kv_heads} does not divide num_heads={self.num_heads}")
        if self.kv_heads != self.num_heads and self.arch != "llama" and builtin:
            raise ValueError(f"grouped-query attention (kv_heads < num_heads) is arch 'llama' only, got "
                             f"arch {self.arch!r} with kv_heads={self.kv_heads}")
        if self.positional == "rope" and self.head_dim % 2:
            raise ValueError(f"positional='rope' needs an even head dimension, got {self.head_dim}")

    def defaults(self) -> dict:
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

    def replace(self, **changes) -> "ModelConfig":
        """A copy with `changes`; the fields left at their default (d_ff, positional, dropout, kv_heads) and not
        in `changes` take the new config's default (the new arch's, 4·the new d_model, the new num_heads)."""
        changes = {**{name: None for name, default in self.defaults().items() if getattr(self, name) == default},
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
