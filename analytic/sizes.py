"""The sizes every exact term is made of: bytes of the tensors one training step allocates.

All are closed forms of (B, T, D, H, G, F, V, e) with e the bytes per element of the setup's dtype and G the key/value
heads (H without grouped-query attention), and numpy-friendly:
pass arrays for any of them to evaluate many configurations at once.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace

import numpy as np

from analytic.params import parameter_count, parameter_tensor_count
from model.setup import DTYPE_BYTES
from model.spec import StepSpec

INT64_BYTES = 8
STEP_COUNTER_BYTES = 4  # fused AdamW keeps each parameter's step as a float32 0-dim tensor on the device

# Symbols of the allocation programs (analytic.exact.programs), in bytes:
SYMBOLS = ("a", "h", "f", "s", "r", "n", "t", "c", "a4", "s4", "c4", "m", "m4", "l", "le",
           "a2", "h2", "f2", "s2", "n2", "c2", "gDD", "gDF", "gVD", "gD", "gTD", "wdd", "wdf", "wvd", "k",
           "kv", "hk", "kv2", "hk2", "s1", "r4", "gKD", "gF", "wkd", "wd", "wf")
# The domain of each layout class of the derived programs, keyed by its layout (B == 1, H == 1, G < H, G == 1);
# G = H unless stated. Grouped- and multi-query attention (G < H) are llama's.
HEAD_LAYOUTS = {(False, False, False): "H >= 2", (True, False, True): "H == 1",
                (False, True, False): "2 <= G < H", (False, True, True): "G == 1, H >= 2"}
DOMAINS = {(batch_one, *heads): f"B {'==' if batch_one else '>='} {1 if batch_one else 2}, {text}, T >= 2"
           for heads, text in HEAD_LAYOUTS.items() for batch_one in (False, True)}
LSE_ROWS = 32  # the memory-efficient SDPA kernel pads its logsumexp to a multiple of 32 rows (kAlignLSE)


def head_layout(heads, kv_heads) -> tuple:
    """(H == 1, G < H, G == 1): the head part of a layout class (numbers or numpy arrays)."""
    return heads == 1, kv_heads < heads, kv_heads == 1


def optimizer_key(arch: str, positional: str, grouped: bool, optimizer: str) -> tuple:
    """The key of an AdamW layout's programs (analytic/exact/derived.json.gz's optimizers): the parameter shapes
    (arch, positional, G < H) and the AdamW implementation."""
    return (arch, positional, grouped, optimizer)


def dtypes_class(attention: str, dtype: str, autocast: str = "none", arch: str = "reference",
                 loss_parallel: bool = False) -> str:
    """Which dtypes one derived program class covers: 'any', 'fp32', '16-bit' or 'amp-bf16' (float32 parameters,
    bf16 autocast). The SDPA math path, llama's RMSNorm and loss parallelism (tensor parallelism's cross-entropy of
    split logits) compute 16-bit inputs in fp32 (other programs than fp32's), flash runs 16-bit dtypes only, every
    other program holds for any dtype."""
    if autocast != "none":
        return f"amp-{'bf16' if autocast == 'bfloat16' else autocast}"
    if attention == "sdpa-flash":
        return "16-bit"
    if attention == "sdpa-math" or arch == "llama" or loss_parallel:
        return "fp32" if dtype == "float32" else "16-bit"
    return "any"


@dataclass(frozen=True)
class LayoutClass:
    """A layout class: the options a step's programs depend on and its layout (B == 1, H == 1, G < H, G == 1);
    the key of one class's derived programs (analytic.exact.source.Programs.layout_class), named in a programs
    file by name() (its fields as a JSON array)."""

    arch: str = "reference"
    positional: str = "learned"
    attention: str = "explicit"
    dtypes: str = "any"  # the dtypes one class's programs cover (dtypes_class)
    checkpointing: str = "none"
    dropout: bool = False  # gpt2's dropouts run
    batch_one: bool = False  # B == 1
    head_one: bool = False  # H == 1
    grouped: bool = False  # G < H: grouped- or multi-query attention (llama)
    kv_one: bool = False  # G == 1: H == 1, or multi-query attention

    def __post_init__(self):
        if self.head_one and not self.kv_one:
            object.__setattr__(self, "kv_one", True)  # H == 1 has one key/value head

    @classmethod
    def of(cls, arch: str, positional: str, attention: str, dtype: str, autocast: str, checkpointing: str,
           dropout: bool, layout: tuple, loss_parallel: bool = False) -> "LayoutClass":
        """The class of a setup's options (its dtype and autocast as the dtypes class) in one layout."""
        return cls(arch, positional, attention, dtypes_class(attention, dtype, autocast, arch, loss_parallel),
                   checkpointing, bool(dropout), *(bool(x) for x in layout))

    @property
    def layout(self) -> tuple[bool, bool, bool, bool]:
        return self.batch_one, self.head_one, self.grouped, self.kv_one

    @property
    def domain(self) -> str:
        return DOMAINS[self.layout]

    def what(self) -> str:
        return (f"{self.arch}, {self.positional}, {self.attention}, {self.dtypes} dtypes, checkpointing "
                f"{self.checkpointing}{', dropout' if self.dropout else ''}, {self.domain}")

    def fields(self) -> list:
        return [getattr(self, field.name) for field in dataclasses.fields(self)]

    def name(self) -> str:
        return json.dumps(self.fields())

    @classmethod
    def parse(cls, name: str) -> "LayoutClass":
        return cls(*json.loads(name))


@dataclass(frozen=True)
class ShardedClass:
    """The class of one rank of a sharded step: one device's layout class at the batch of one micro-batch, the
    shard strategy, FSDP2's resharding, whether FSDP2 shards over one rank (world_size = t: it copies instead of
    gathering, other programs), whether there are micro-batches, the zero_grad option, and whether there is
    tensor parallelism (t > 1, any t: the programs' symbols take t) and sequence parallelism; named by name() as
    LayoutClass is. With tensor parallelism the layout's heads are a rank's (H/t == 1, G/t == 1), and the dtypes
    class is fp32 or 16-bit where one device's holds for any dtype (loss parallelism computes the log-softmax of
    16-bit logits in fp32)."""

    layout_class: LayoutClass
    shard: str
    reshard_after_forward: bool
    one_rank: bool
    micro_batched: bool
    zero_grad: str
    tensor_parallel: bool = False  # t > 1
    sequence_parallel: bool = False

    def fields(self) -> list:
        return [*self.layout_class.fields(), self.shard, self.reshard_after_forward, self.one_rank,
                self.micro_batched, self.zero_grad, self.tensor_parallel, self.sequence_parallel]

    def name(self) -> str:
        return json.dumps(self.fields())

    @classmethod
    def of(cls, spec: StepSpec) -> "ShardedClass":
        """The class of a sharded spec's rank (at the spec's step batch)."""
        config, setup = spec.model, spec.setup
        micro_batch, t = spec.batch_size // setup.micro_batches, setup.tensor_parallel
        heads = head_layout(config.num_heads // t, config.kv_heads // t)
        layout = (micro_batch == 1, *(bool(x) for x in heads))
        layout_class = LayoutClass.of(config.arch, config.positional, setup.attention, setup.dtype, setup.autocast,
                                      setup.checkpointing, config.dropout > 0, layout, loss_parallel=t > 1)
        one_rank = setup.shard == "fsdp2" and setup.world_size == t
        return cls(layout_class, setup.shard, setup.reshard_after_forward, one_rank, setup.micro_batches > 1,
                   setup.zero_grad, t > 1, setup.sequence_parallel)

    def what(self) -> str:
        return (f"{self.layout_class.what()}, {self.shard}"
                f"{'' if self.reshard_after_forward else ', no reshard after forward'}"
                f"{', one rank' if self.one_rank else ''}{', micro-batches' if self.micro_batched else ''}, "
                f"zero_grad {self.zero_grad}{', tensor parallel' if self.tensor_parallel else ''}"
                f"{', sequence parallel' if self.sequence_parallel else ''}")

    @classmethod
    def parse(cls, name: str) -> "ShardedClass":
        """The class a name() names (ValueError for a name of other fields: another version's)."""
        fields = json.loads(name)
        expected = len(dataclasses.fields(LayoutClass)) + len(dataclasses.fields(cls)) - 1
        if len(fields) != expected:
            raise ValueError(f"{name} names no sharded class: {len(fields)} fields, not {expected}")
        *layout_class, shard, reshard_after_forward, one_rank, micro_batched, zero_grad, tp, sp = fields
        return cls(LayoutClass(*layout_class), shard, reshard_after_forward, one_rank, micro_batched, zero_grad, tp, sp)


def symbol_bytes(B, T, D, H, F, V, e, K) -> dict:
    """Bytes of each tensor kind (the programs' alphabet).

    a  = B·T·D·e   one activation of the residual width ([B,T,D], or [B,H,T,Dh] of a head view)
    h  = a/2       half of one: RoPE's even or odd features [B,H,T,Dh/2]
    f  = B·T·F·e   one feed-forward hidden activation
    s  = B·H·T²·e  one attention matrix (scores, probabilities and their gradients)
    r  = B·T·e     one per-token scalar (RMSNorm's rsqrt and its gradients)
    n  = B·T·V·e   logits, log-probabilities and their gradients
    t  = T·D·e     the learned position embedding's output and gradients
    c  = e         a 0-dim tensor (the loss, cross-entropy's total weight, the backward seed)
    a4, s4, c4 = B·T·D·4, B·H·T²·4, 4   a, s and c in fp32 whatever e (the SDPA math path computes 16-bit
                   inputs in fp32)
    l  = B·H·T·4   the flash kernel's fp32 logsumexp, one per query row
    le = B·H·⌈T/32⌉·32·4   the memory-efficient kernel's, its rows padded to a multiple of 32
    m, m4 = T², T²·4   a [T, T] bool mask and its fp32 additive form (the SDPA math path builds both each call)
    a2, h2, f2, s2, n2, c2 = a, h, f, s, n, c in bf16 whatever e (autocast's low-precision activations; h2,
                   B·T·D bytes, is also a bool [B, T, D] dropout mask)
    wdd, wdf, wvd = D²·2, D·F·2, V·D·2   autocast's bf16 copies of the weights
    gDD, gDF, gVD, gD, gTD = D²·e, D·F·e, V·D·e, D·e, T·D·e   parameter-sized: weight gradients, AdamW
                                                             state and temporaries
    k  = 4         a float32 0-dim tensor whatever e (fused AdamW's step counter on the device)
    kv, hk, kv2, hk2 = B·T·K·e, its half, and both in bf16, with K = G·D/H the key/value width (grouped-query
                   attention's k and v before repeat_kv)
    s1 = B·H·T²   the attention probabilities' bool dropout mask (gpt2; the [B, T, D] masks are h2's size)
    r4 = B·T·4     a per-token scalar in fp32 whatever e (LayerNorm's mean and rstd; llama's float32 RMSNorm)
    gKD, gF = K·D·e, F·e     k/v weights under grouped-query attention; the W1 bias (gpt2)
    wkd, wd, wf = K·D·2, D·2, F·2   autocast's bf16 copies of those weights and of the biases
    """
    a = B * T * D * e
    return {"a": a, "h": a // 2, "f": B * T * F * e, "s": B * H * T * T * e, "r": B * T * e,
            "n": B * T * V * e, "t": T * D * e, "c": e + 0 * B, "a4": B * T * D * 4, "s4": B * H * T * T * 4,
            "c4": 4 + 0 * B, "m": T * T + 0 * B, "m4": T * T * 4 + 0 * B, "l": B * H * T * 4,
            "le": B * H * ((T + LSE_ROWS - 1) // LSE_ROWS) * LSE_ROWS * 4,
            "a2": B * T * D * 2, "h2": B * T * D, "f2": B * T * F * 2, "s2": B * H * T * T * 2,
            "n2": B * T * V * 2, "c2": 2 + 0 * B, "wdd": D * D * 2 + 0 * B, "wdf": D * F * 2 + 0 * B,
            "wvd": V * D * 2 + 0 * B,
            "gDD": D * D * e, "gDF": D * F * e, "gVD": V * D * e, "gD": D * e, "gTD": T * D * e,
            "k": STEP_COUNTER_BYTES + 0 * B, "kv": B * T * K * e, "hk": B * T * K * e // 2,
            "kv2": B * T * K * 2, "hk2": B * T * K, "s1": B * H * T * T, "r4": B * T * 4,
            "gKD": K * D * e + 0 * B, "gF": F * e + 0 * B, "wkd": K * D * 2 + 0 * B, "wd": D * 2 + 0 * B,
            "wf": F * 2 + 0 * B}


@dataclass(frozen=True)
class Sizes:
    B: np.ndarray
    T: np.ndarray
    D: np.ndarray
    H: np.ndarray
    F: np.ndarray
    V: np.ndarray
    L: np.ndarray
    e: np.ndarray  # bytes per element
    G: np.ndarray  # key/value heads (H without grouped-query attention)
    params: np.ndarray  # parameter count
    tensors: np.ndarray  # parameter tensor count
    learned: np.ndarray  # 1 where positional == "learned"
    rope: np.ndarray  # 1 where positional == "rope"
    checkpointing: str = "none"  # one for all: model.setup.OPTIONS
    attention: str = "explicit"  # one for all: model.setup.OPTIONS
    dtype: str = "float32"  # one for all: the name behind e
    autocast: str = "none"  # one for all: model.setup.OPTIONS
    micro_batches: int = 1  # one for all: B is the batch of one micro-batch, the step's is micro_batches·B
    zero_grad: str = "none"  # one for all: model.setup.OPTIONS
    arch: str = "reference"  # one for all: model.config.ARCH_OPTIONS
    dropout: bool = False  # one for all: whether gpt2's dropouts run (config.dropout > 0)

    def symbols(self) -> dict[str, np.ndarray]:
        """Bytes of each tensor kind (the programs' alphabet, symbol_bytes), worked out once per Sizes."""
        return dict(self._symbols)

    @cached_property
    def _symbols(self) -> dict:
        return symbol_bytes(self.B, self.T, self.D, self.H, self.F, self.V, self.e, self.K)

    def symbol_matrix(self) -> np.ndarray:
        """[SYMBOLS, elements] int64: each symbol's bytes (in SYMBOLS order) at each element, flattened (one
        config's in Python integers: the same numbers, without numpy's cost per operation)."""
        return self._symbol_matrix

    @cached_property
    def _symbol_matrix(self) -> np.ndarray:
        shape = np.shape(self.B)
        if shape == ():
            plain = symbol_bytes(*(int(size) for size in (self.B, self.T, self.D, self.H, self.F, self.V, self.e,
                                                          self.K)))
            return np.array([[plain[name]] for name in SYMBOLS], dtype=np.int64)
        return np.stack([np.broadcast_to(self._symbols[name], shape).reshape(-1) for name in SYMBOLS])

    def select(self, chosen) -> "Sizes":
        """These sizes at the elements `chosen` (a bool mask or indices over the flattened elements), as 1-d
        arrays."""
        shape = np.shape(self.B)
        return dataclasses.replace(self, **{name: np.broadcast_to(getattr(self, name), shape).reshape(-1)[chosen]
                                            for name in ARRAY_FIELDS})

    @property
    def K(self):
        """The key/value width G·D/H; D itself where G is H (so that symbolic sizes keep D, not H·⌊D/H⌋)."""
        return self.D if self.G is self.H else self.G * (self.D // self.H)

    def layouts(self) -> np.ndarray:
        """[4, ...] bools, the layout of each element: B == 1, H == 1, G < H (grouped-query attention) and
        G == 1 (one key/value head: H == 1, or multi-query attention)."""
        return np.stack(np.broadcast_arrays(self.B == 1, *head_layout(self.H, self.G)))

    @cached_property
    def layout_groups(self) -> list[tuple[tuple[bool, ...], np.ndarray]]:
        """[(layout, chosen)]: each layout (Sizes.layouts) present, and its elements as a bool mask over the
        flattened elements."""
        layouts = self.layouts().reshape(4, -1)
        codes = layouts[0] + 2 * layouts[1] + 4 * layouts[2] + 8 * layouts[3]
        groups = []
        for code in np.unique(codes):
            chosen = codes == code
            groups.append((tuple(bool(x) for x in layouts[:, np.argmax(chosen)]), chosen))
        return groups

    def layout_class(self, positional: str, layout: tuple[bool, ...]) -> LayoutClass:
        """The layout class of these sizes in one layout (Sizes.layouts)."""
        return LayoutClass.of(self.arch, positional, self.attention, self.dtype, self.autocast, self.checkpointing,
                              self.dropout, layout)

    @property
    def parameter_bytes(self):
        return self.params * self.e

    @property
    def buffer_bytes(self):
        """Causal mask T² bools, position indices 8·T, RoPE cos and sin tables T·Dh/2 elements each (the model's
        dtype)."""
        T, D, H = self.T, self.D, self.H
        return T * T + INT64_BYTES * T + self.rope * T * (D // H) * self.e

    @property
    def input_bytes(self):
        """Token ids and targets of the whole batch, [micro_batches·B, T] int64 each."""
        return 2 * INT64_BYTES * self.micro_batches * self.B * self.T


ARRAY_FIELDS = ("B", "T", "D", "H", "F", "V", "L", "e", "G", "params", "tensors", "learned", "rope")


def sizes_from_arrays(*, vocab_size, context_length, num_layers, d_model, num_heads, d_ff, batch_size,
                      positional: str = "learned", dtype: str = "float32", checkpointing: str = "none",
                      micro_batches: int = 1, zero_grad: str = "none", attention: str = "explicit",
                      autocast: str = "none", arch: str = "reference", kv_heads=None,
                      dropout: float = 0.0) -> Sizes:
    """Sizes of many configurations at once (numpy arrays that broadcast together; one arch, positional option,
    dtype, checkpointing and micro-batching for all; batch_size is the batch of one micro-batch; kv_heads None:
    num_heads). Parameter and tensor counts are analytic.params' formulas, evaluated on the arrays."""
    V, T, L, D, H, F, B = (np.asarray(value, dtype=np.int64) for value in
                           (vocab_size, context_length, num_layers, d_model, num_heads, d_ff, batch_size))
    G = H if kv_heads is None else np.asarray(kv_heads, dtype=np.int64)
    V, T, L, D, H, F, B, G = np.broadcast_arrays(V, T, L, D, H, F, B, G)
    shape = SimpleNamespace(vocab_size=V, context_length=T, num_layers=L, d_model=D, d_ff=F, arch=arch,
                            positional=positional, kv_width=G * (D // H))
    return Sizes(B=B, T=T, D=D, H=H, F=F, V=V, L=L, e=np.full_like(B, DTYPE_BYTES[dtype]), G=G,
                 params=parameter_count(shape), tensors=parameter_tensor_count(shape),
                 learned=np.full_like(B, int(positional == "learned")),
                 rope=np.full_like(B, int(positional == "rope")), checkpointing=checkpointing,
                 micro_batches=micro_batches, zero_grad=zero_grad, attention=attention, dtype=dtype,
                 autocast=autocast, arch=arch, dropout=bool(dropout))


def sizes_of(spec: StepSpec) -> Sizes:
    """Sizes of one step spec at its batch size or numpy array of batch sizes (of the whole step: each must be a
    multiple of the setup's micro_batches, and B is the batch of one micro-batch)."""
    config, setup, batch_size = spec.model, spec.setup, spec.batch_size
    B = np.asarray(batch_size, dtype=np.int64)
    if np.any(B % setup.micro_batches):
        raise ValueError(f"batch size {batch_size} is not divisible by micro_batches={setup.micro_batches}")
    B = B // setup.micro_batches
    as_array = lambda value: np.asarray(value, dtype=np.int64) + 0 * B  # noqa: E731 - broadcast to B's shape
    return Sizes(B=B, T=as_array(config.context_length), D=as_array(config.d_model), H=as_array(config.num_heads),
                 F=as_array(config.d_ff), V=as_array(config.vocab_size), L=as_array(config.num_layers),
                 e=as_array(DTYPE_BYTES[setup.dtype]), G=as_array(config.kv_heads),
                 params=as_array(parameter_count(config)),
                 tensors=as_array(parameter_tensor_count(config)),
                 learned=as_array(config.positional == "learned"), rope=as_array(config.positional == "rope"),
                 checkpointing=setup.checkpointing, micro_batches=setup.micro_batches, zero_grad=setup.zero_grad,
                 attention=setup.attention, dtype=setup.dtype, autocast=setup.autocast, arch=config.arch,
                 dropout=bool(config.dropout))
