"""The shipped programs of the built-in blocks: derived from traces of the real step, as any model's are.

This is analytic.exact.derivation.any_model's derivation with its own alphabet and windows: each layout class
(arch, positional option, attention, dtypes, checkpointing, dropout; B == 1 or B ≥ 2; H == 1 or H ≥ 2;
grouped-query attention (G < H) or not; T ≥ 2 throughout) is traced (analytic.exact.derivation.trace, the
categories measure() gives) at two unrelated size sets (fp32 and bf16) and L = 1, 2 and 3 layers, and each window's
events are fitted (analytic.exact.derivation.fit) to the named symbols of analytic.sizes (a = B·T·D·e,
s = B·H·T²·e, gDF = D·F·e, k = 4, ...; ALPHABET: a category takes only its own, the first in SYMBOLS order that
fits both sets), so that a coincidence of sizes cannot name a tensor wrongly (and 4-byte step counters are told
from e-byte scalars; no two symbols may agree at both sets but not at CHECK_SET); a byte count that fits no symbol
stops the derivation. The tokens (analytic.exact.programs): `+t:a` a temporary, `-A:s` a tensor saved for backward,
`+G:gDD` a weight gradient, `+t:gDD` one about to be added into .grad, `+O:gDF` an AdamW temporary, `+S:gVD` AdamW
state. A window's tokens at L = 1, 2, 3 are split into segments, each run once or L times (one per block, or per
block's parameters):
    c0 + X1 × L + c1 + X2 × L + ... + ck
(the exact tests check larger L). Saved activations by component come from the same traces.

The windows (CLASS_WINDOWS) come from one step of two micro-batches that keeps its gradients (zero_grad 'zeros')
with AdamW's step left out, and a zero_grad(set_to_none=True) after it, traced on meta for every layout class. The
AdamW step (OPTIMIZER_WINDOWS: the warm-up step, which creates the state, and the steady one, as measure() runs
them) is traced per parameter layout (arch, positional option, grouped-query attention) and implementation in the
general layout: on meta for foreach and for-loop, on CPU for fused (which has no meta kernel).

`derive()` returns the data that tools/derive_programs.py writes to analytic/exact/derived.json.gz (`document`).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import torch

from analytic.exact import store
from analytic.exact.derivation.fit import DerivationError, SymbolAlphabet, fit, segment
from analytic.exact.derivation.revision import simulation_revision
from analytic.exact.derivation.trace import WARMUP, ZERO_GRAD_NONE, Event, Saved, Trace, describe, trace
from analytic.exact.programs import compile_program
from analytic.sizes import HEAD_LAYOUTS, SYMBOLS, LayoutClass, dtypes_class, optimizer_key, sizes_of
from model.config import ARCH_OPTIONS, ARCH_POSITIONAL
from model.setup import DTYPE_BYTES, OPTIONS
from model.spec import StepSpec
from model.vocabulary import COMPONENTS, OPTIMIZERS

# The windows of a layout class's programs, as class_traces names them: micro-batch 1 (no gradient yet), a later
# micro-batch (the previous one's loss dies in its forward, each weight gradient is added into .grad), zero_grad
# 'zeros' (AdamW's step left out) and zero_grad 'none'; those of an AdamW layout, as measure()'s two steps name them
CLASS_WINDOWS = {"forward_first": "warmup.forward_1", "forward_later": "warmup.forward_2",
                 "backward_fresh": "warmup.backward_1", "backward_accumulate": "warmup.backward_2",
                 "zero_grad_none": ZERO_GRAD_NONE, "zero_grad_zeros": "warmup.optimizer"}
OPTIMIZER_WINDOWS = {"warmup": "warmup.optimizer", "steady": "measured.optimizer"}
LAYERS = (1, 2, 3)
# Two unrelated size sets (primes where the model allows; an even head size for RoPE; 4- and 2-byte elements, so
# that a size in bytes per element is told apart from a fixed one); B and H are set per class.
SIZE_SETS = ({"batch": 3, "heads": 3, "head_dim": 6, "T": 7, "F": 29, "V": 37, "dtype": "float32"},
             {"batch": 7, "heads": 2, "head_dim": 10, "T": 11, "F": 23, "V": 41, "dtype": "bfloat16"})
# The fused SDPA kernels need head sizes divisible by 8. A class traced at two fp32 or two 16-bit sets holds for
# those dtypes only (no symbol then tells e-scaled sizes from fixed ones, which agree at those dtypes).
DTYPES_OF = {"any": ("float32", "bfloat16"), "fp32": ("float32", "float32"), "16-bit": ("bfloat16", "float16"),
             "amp-bf16": ("float32", "float32")}  # float32 parameters, the forward under bf16 autocast


# A third size set, never traced: two symbols that agree at both traced sets but not here would be a coincidence
# of the traced sizes, which could name a tensor wrongly (coincident_symbols).
CHECK_SET = {"batch": 11, "heads": 5, "T": 13, "F": 31, "V": 43}


def coincident_symbols(cls: LayoutClass) -> list[tuple[str, str]]:
    """Pairs of symbols whose bytes are equal at both size sets of the class but differ at CHECK_SET."""
    values, traced = [], size_sets(cls)
    head_dim = 24 if cls.attention in ("sdpa-flash", "sdpa-efficient") else 18
    for size_set in (*traced, dict(traced[0], **CHECK_SET, head_dim=head_dim)):
        values.append(symbols(traced_spec(cls, 2, size_set)))
    first, second, check = values
    return [(x, y) for x, y in itertools.combinations(SYMBOLS, 2)
            if first[x] == first[y] and second[x] == second[y] and check[x] != check[y]]


def symbols(spec: StepSpec) -> dict[str, int]:
    """The bytes of every symbol of analytic.sizes at the spec's sizes."""
    return {name: int(value) for name, value in sizes_of(spec).symbols().items()}


def size_sets(cls: LayoutClass) -> tuple[dict, dict]:
    head_dims = (8, 16) if cls.attention in ("sdpa-flash", "sdpa-efficient") else (6, 10)
    return tuple(dict(size_set, head_dim=dim, dtype=dtype)
                 for size_set, dim, dtype in zip(SIZE_SETS, head_dims, DTYPES_OF[cls.dtypes]))


DROPOUT = 0.1  # the probability traced where a class has dropout (the bytes do not depend on it)
ACTIVATION_SYMBOLS = tuple(name for name in SYMBOLS if not name.startswith("g") and name != "k")
GRADIENT_SYMBOLS = tuple(name for name in SYMBOLS if name.startswith("g"))
PARAMETER_SIZED = GRADIENT_SYMBOLS + ("k",)
# The symbols each category's storages may be (a temporary activation-sized, or a weight gradient about to be added
# into .grad; AdamW's own parameter-sized, or 4-byte step counters)
ALPHABET = SymbolAlphabet(SYMBOLS, {"gradients": GRADIENT_SYMBOLS, "optimizer_state": PARAMETER_SIZED,
                                    "optimizer_temporaries": PARAMETER_SIZED, "saved_activations": ACTIVATION_SYMBOLS,
                                    "temporaries": ACTIVATION_SYMBOLS + GRADIENT_SYMBOLS})


def traced_spec(cls: LayoutClass, layers: int, size_set: dict, micro_batches: int = 1) -> StepSpec:
    """The step spec of one traced size set, its (whole) batch micro_batches micro-batches of B each."""
    heads = 1 if cls.head_one else size_set["heads"] * (2 if cls.grouped and not cls.kv_one else 1)
    kv_heads = 1 if cls.kv_one else 2 if cls.grouped else heads  # grouped: 3 and 2 query heads per key/value head
    return StepSpec.of(vocab_size=size_set["V"], context_length=size_set["T"], num_layers=layers,
                       d_model=heads * size_set["head_dim"], num_heads=heads, d_ff=size_set["F"], arch=cls.arch,
                       dropout=DROPOUT if cls.dropout else 0.0, kv_heads=kv_heads,
                       positional=cls.positional, attention=cls.attention, dtype=size_set["dtype"],
                       checkpointing=cls.checkpointing, micro_batches=micro_batches,
                       autocast="bfloat16" if cls.dtypes == "amp-bf16" else "none",
                       batch_size=micro_batches * (1 if cls.batch_one else size_set["batch"]))


@dataclass
class Traced:
    """Traces of one class or parameter layout, per L (in LAYERS order) and size set, each with its spec."""

    specs: dict[int, list[StepSpec]]
    traces: dict[int, list[Trace]]

    @cached_property
    def symbols(self) -> dict[int, list[dict[str, int]]]:
        return {layers: [symbols(spec) for spec in specs] for layers, specs in self.specs.items()}

    def fit(self, layers: int, groups: list[list[Event]], what: str) -> list[str]:
        """The tokens of events traced at L = layers, one list per size set: each event the symbol its bytes are
        at both size sets (ALPHABET)."""
        return fit(groups, self.symbols[layers], ALPHABET, what, [describe(spec) for spec in self.specs[layers]])

    def programs(self, window: str, what: str) -> dict[int, list[str]]:
        """{L: the tokens of a traced window}."""
        return {layers: self.fit(layers, [trace.windows[window] for trace in traces], what)
                for layers, traces in self.traces.items()}


def class_traces(cls: LayoutClass) -> Traced:
    """The class's step of two micro-batches that keeps its gradients (zero_grad 'zeros'), AdamW's step left out
    (its own traces are derive_optimizer's), and a zero_grad(set_to_none=True) after it, on meta (CLASS_WINDOWS)."""
    specs = {layers: [traced_spec(cls, layers, size_set, micro_batches=2).replace(zero_grad="zeros",
                                                                                  optimizer="foreach")
                      for size_set in size_sets(cls)] for layers in LAYERS}
    return Traced(specs, {layers: [trace(spec, steps=(WARMUP,), stub_optimizer=True, set_to_none=True)
                                   for spec in at] for layers, at in specs.items()})


def derive_class(cls: LayoutClass, traced: Traced | None = None) -> dict:
    """The segments of every window of CLASS_WINDOWS, and saved activations by component (the symbol of each
    storage, per layer and outside the layers), of one layout class. A micro-batch after the first must leave
    nothing behind (forward_later + backward_accumulate nets to zero), so that every later one repeats it."""
    what = cls.what()
    coincident = coincident_symbols(cls)
    if coincident:
        raise DerivationError(f"{what}: the size sets make symbols coincide: {coincident}")
    traced = traced or class_traces(cls)
    programs = {name: traced.programs(window, f"{what}, {name}") for name, window in CLASS_WINDOWS.items()}
    result: dict = {"domain": cls.domain}
    for name in CLASS_WINDOWS:
        result[name] = segment(programs[name], f"{what}, {name}")
    if any(compile_program(" ".join(programs["forward_later"][layers] + programs["backward_accumulate"][layers]))[1]
           .any() for layers in LAYERS):
        raise DerivationError(f"{what}: a micro-batch after the first leaves memory behind")
    first, second = traced.traces[2]
    components: dict[str, dict[str, str]] = {"layer": {}, "outside": {}}
    for (component, layer), saved in sorted(by_saver(first.saved).items(), key=lambda item: str(item[0])):
        tokens = traced.fit(2, [saved, by_saver(second.saved).get((component, layer), [])],
                            f"{what}, saved by {component}")
        names = " ".join(text.split(":")[1] for text in tokens)  # the symbols, one per saved storage
        where = "outside" if layer is None else "layer"
        if layer in (None, 0):
            components[where][component] = names
        elif names != components["layer"].get(component):
            raise DerivationError(f"{what}: layer {layer} saves for {component} what layer 0 does not")
    result["saved_by_component"] = {where: {name: names[name] for name in COMPONENTS if name in names}
                                    for where, names in components.items()}
    return result


def by_saver(saved: list[Saved]) -> dict[tuple[str, int | None], list[Saved]]:
    """The saved storages by (component, layer) that saved them, in the order saved."""
    grouped: dict[tuple[str, int | None], list[Saved]] = {}
    for storage in saved:
        grouped.setdefault((storage.component, storage.layer), []).append(storage)
    return grouped


def derive_optimizer(parameters: LayoutClass, optimizer: str, zero_grad: dict[int, list[str]]) -> dict:
    """The AdamW step's segments in the warm-up step (state created) and the steady state of one parameter
    layout (`parameters`: the general class of an arch, positional option and grouped-query attention or not),
    from measure()'s two steps (OPTIMIZER_WINDOWS): the traced optimizer window less the
    zero_grad(set_to_none=True) that ends it (`zero_grad`, per L, from the class traces)."""
    device = "cpu" if optimizer == "fused" else "meta"
    specs = {layers: [traced_spec(parameters, layers, size_set).replace(optimizer=optimizer)
                      for size_set in SIZE_SETS] for layers in LAYERS}
    traced = Traced(specs, {layers: [trace(spec, device) for spec in at] for layers, at in specs.items()})
    what = f"{parameters.arch}, {parameters.positional}{', G < H' if parameters.grouped else ''}, AdamW {optimizer}"
    result = {}
    for step, window in OPTIMIZER_WINDOWS.items():
        programs = traced.programs(window, f"{what}, {window}")
        for layers, tokens in programs.items():
            tail = zero_grad[layers]
            if tokens[len(tokens) - len(tail):] != tail:
                raise DerivationError(f"{what}, {window}: the step does not end with zero_grad's frees")
            programs[layers] = tokens[:len(tokens) - len(tail)]
        result[step] = segment(programs, f"{what}, {window}")
    return result


def parameter_layouts() -> list[LayoutClass]:
    """The general class of each parameter layout: arch, positional option, grouped-query attention (llama)."""
    return [LayoutClass(arch, positional, dtypes=dtypes_class("explicit", "float32", arch=arch), grouped=grouped)
            for arch in ARCH_OPTIONS for positional in ARCH_POSITIONAL[arch]
            for grouped in ((False, True) if arch == "llama" else (False,))]


def class_keys() -> list[LayoutClass]:
    """Every layout class, in the order of analytic/exact/derived.json.gz: per arch, its positional options,
    dropout or not (gpt2, except with sdpa-math, whose dropout is not simulated), and layouts (B == 1, H == 1,
    and for llama grouped- and multi-query attention)."""
    keys = []
    for arch in ARCH_OPTIONS:
        heads = list(HEAD_LAYOUTS) if arch == "llama" else [(False, False, False), (True, False, True)]
        layouts = [(batch_one, *head) for head in heads for batch_one in (False, True)]
        for positional, attention in itertools.product(ARCH_POSITIONAL[arch], OPTIONS["attention"].choices):
            dropouts = (False, True) if arch == "gpt2" and attention != "sdpa-math" else (False,)
            dtype_classes = {dtypes_class(attention, dtype, arch=arch) for dtype in DTYPE_BYTES} | {"amp-bf16"}
            for dtypes in sorted(dtype_classes):
                keys += [LayoutClass(arch, positional, attention, dtypes, checkpointing, dropout, *layout)
                         for checkpointing in OPTIONS["checkpointing"].choices for dropout in dropouts
                         for layout in layouts]
    return keys


def derive(keys: Iterable[LayoutClass] | None = None, optimizers=True) -> dict:
    """{"classes": {LayoutClass: class data}, "optimizers": {(arch, positional, grouped, optimizer): data}}:
    every class (or `keys`), and every AdamW implementation per parameter layout (with `optimizers` True, or
    those of its keys; their zero_grad tail comes from the layout's general explicit class, traced for it)."""
    classes, adamw = {}, {}
    for cls in keys if keys is not None else class_keys():
        classes[cls] = derive_class(cls)
    wanted = optimizers if optimizers is not True else [
        optimizer_key(layout.arch, layout.positional, layout.grouped, optimizer)
        for layout in parameter_layouts() for optimizer in OPTIMIZERS]
    for parameters in parameter_layouts():
        mine = [key for key in wanted or () if key[:3] == (parameters.arch, parameters.positional, parameters.grouped)]
        if mine:
            zero_grad = class_traces(parameters).programs(ZERO_GRAD_NONE, f"{parameters.what()}, zero_grad_none")
            for key in mine:
                adamw[key] = derive_optimizer(parameters, key[3], zero_grad)
    return {"classes": classes, "optimizers": adamw}


def document(derived: dict) -> dict:
    """derive()'s programs as a programs document (analytic.exact.store) of the installed torch and the simulation
    revision that derived them."""
    return {"torch_version": torch.__version__, "simulation_revision": simulation_revision(),
            "classes": {key.name(): data for key, data in derived["classes"].items()},
            "optimizers": {store.key_name(key): data for key, data in derived["optimizers"].items()}}
