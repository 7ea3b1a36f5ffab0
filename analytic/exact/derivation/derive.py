"""The exact model's allocation programs, derived from traces of the real step (no hand-typed program).

For each layout class (arch, positional option, attention, dtypes, checkpointing, dropout; B == 1 or B ≥ 2;
H == 1 or H ≥ 2; grouped-query attention (G < H) or not; T ≥ 2 throughout) the step is traced
at sizes chosen so that every allocation's byte count names one symbol of analytic.sizes (a = B·T·D·e,
s = B·H·T²·e, gDF = D·F·e, k = 4, ...). Each phase's event list becomes a program of tokens
(analytic.exact.programs): `+t:a` a temporary, `-A:s` a tensor saved for backward, `+G:gDD` a weight gradient,
`+t:gDD` one about to be added into .grad, `+O:gDF` an AdamW temporary, `+S:gVD` AdamW state.
A phase is split into segments, each run once or L times (one per block, or per block's parameters):
    c0 + X1 × L + c1 + X2 × L + ... + ck
found from traces with L = 1, 2 and 3 layers (the exact tests check larger L). Every class is traced at two
unrelated size sets (fp32 and bf16), and a token keeps only the symbols that fit both, so a coincidence of sizes
cannot name a tensor wrongly (and 4-byte step counters are told from e-byte scalars); a byte count that fits no
symbol stops the derivation. Saved activations by component come from the same traces.

Forward and backward are traced on meta with foreach AdamW, for every layout class. The AdamW step (warm-up step,
which creates the state, and steady state) is traced per parameter layout (arch, positional option, grouped-query
attention) and implementation in the general layout: on meta for foreach and for-loop, on CPU for fused (which has
no meta kernel).

`derive()` returns the data that tools/derive_programs.py writes to analytic/exact/derived.json.gz (`document`).
"""
from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from analytic.exact import store
from analytic.exact.derivation.revision import simulation_revision
from analytic.exact.programs import EVERY_BLOCK_BUT_THE_LAST, EVERY_BLOCK_BUT_TWO, compile_program, runs, token
from analytic.sizes import HEAD_LAYOUTS, SYMBOLS, LayoutClass, dtypes_class, optimizer_key, sizes_of
from model.config import ARCH_OPTIONS, ARCH_POSITIONAL
from model.setup import DTYPE_BYTES, OPTIONS
from model.spec import StepSpec
from model.step import build, make_batch, train_step
from model.vocabulary import COMPONENTS, OPTIMIZERS
from profiler.measuring.measure import kept_ops, on_op, state_tensors
from profiler.measuring.tracker import ALLOC, SavedTensorRecorder, StorageTracker

CLASS_WINDOWS = ("forward_first", "forward_later", "backward_fresh", "backward_accumulate", "zero_grad_none",
                 "zero_grad_zeros")
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
        values.append({name: int(value) for name, value in sizes_of(traced_spec(cls, 2, size_set)).symbols().items()})
    first, second, check = values
    return [(x, y) for x, y in itertools.combinations(SYMBOLS, 2)
            if first[x] == first[y] and second[x] == second[y] and check[x] != check[y]]


def size_sets(cls: LayoutClass) -> tuple[dict, dict]:
    head_dims = (8, 16) if cls.attention in ("sdpa-flash", "sdpa-efficient") else (6, 10)
    return tuple(dict(size_set, head_dim=dim, dtype=dtype)
                 for size_set, dim, dtype in zip(SIZE_SETS, head_dims, DTYPES_OF[cls.dtypes]))


DROPOUT = 0.1  # the probability traced where a class has dropout (the bytes do not depend on it)
ACTIVATION_SYMBOLS = tuple(name for name in SYMBOLS if not name.startswith("g") and name != "k")
GRADIENT_SYMBOLS = tuple(name for name in SYMBOLS if name.startswith("g"))
PARAMETER_SIZED = GRADIENT_SYMBOLS + ("k",)


class DerivationError(RuntimeError):
    """The traced step does not fit the model's form: a size that names no symbol, or no segments."""


@dataclass
class Event:
    sign: str  # "+" or "-"
    category: str  # temporaries, saved_activations, gradients, optimizer_temporaries or optimizer_state
    candidates: frozenset[str]  # the symbols whose size it has
    op: str = ""  # the op that allocated the storage, or the last op before it was freed


@dataclass
class Trace:
    """Events per traced window, by name, and the candidates of each storage saved (by micro-batch 1), by
    (component, layer)."""

    phases: dict[str, list[Event]]
    saved: dict[tuple[str, int | None], list[frozenset[str]]]


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


class _Tracing:
    """A model, its AdamW and a batch built under a storage tracker; windows of events between marks."""

    def __init__(self, spec: StepSpec, device: str):
        self.spec, self.device = spec, device
        self.sizes = {name: int(value) for name, value in sizes_of(spec).symbols().items()}
        self.tracker = StorageTracker(device)
        with self.tracker:
            self.model, self.adamw = build(spec, device)
            self.tokens, self.targets = make_batch(spec.model, spec.batch_size, device)
        self.recorder = SavedTensorRecorder(self.model, self.tracker, kept_ops(spec.setup))
        self.constant = {self.tracker.sid(t) for t in [*self.model.parameters(), *self.model.buffers(),
                                                       self.tokens, self.targets]}
        self.gradients: set[int] = set()
        self.saved_first: dict = {}  # what micro-batch 1 of the first step saved

    def step(self) -> list:
        """One train_step; its marks."""
        marks = []

        def mark(name):
            if name in ("forward", "optimizer") and marks and not self.saved_first:
                self.saved_first = dict(self.recorder.saved)
            marks.append(self.tracker.mark(name))
            self.tracker.ignore_host_scalars = (self.device == "cpu" and self.spec.setup.optimizer != "fused"
                                                and name == "optimizer")
            if name == "optimizer":
                self.gradients.update(self.tracker.sid(p.grad) for p in self.model.parameters())

        self.recorder.saved = {}
        self.tracker.on_op = on_op(self.recorder, None, marks)  # as a measurement does: selective's kept outputs
        with self.recorder.recording(), self.tracker:
            train_step(self.model, self.adamw, self.tokens, self.targets, self.spec.setup, mark)
        return marks

    def events(self, begin, end, optimizer_window: bool) -> list[Event]:
        """The window's events as candidate symbols (0-byte storages, which hold no memory, left out)."""
        saved = set(self.recorder.saved) | set(self.saved_first)
        state = {self.tracker.sid(t) for t in state_tensors(self.adamw) if self.tracker.sid(t) is not None}
        ops, at = self.tracker.ops, self.tracker.event_ops
        return [self._event(sign, sid, nbytes, optimizer_window, saved - self.constant, state,
                            str(ops[at[index] - 1]) if at[index] else "")
                for index, (sign, sid, nbytes) in enumerate(self.tracker.events[begin.event_index:end.event_index],
                                                            start=begin.event_index) if nbytes]

    def _event(self, sign: int, sid: int, nbytes: int, in_optimizer: bool, saved: set, state: set,
               op: str = "") -> Event:
        if sid in self.gradients:
            category, allowed = "gradients", GRADIENT_SYMBOLS
        elif sid in state:
            category, allowed = "optimizer_state", PARAMETER_SIZED
        elif in_optimizer:
            category, allowed = "optimizer_temporaries", PARAMETER_SIZED
        elif sid in saved:
            category, allowed = "saved_activations", ACTIVATION_SYMBOLS
        else:  # a temporary: activation-sized, or a weight gradient about to be accumulated into .grad
            category, allowed = "temporaries", ACTIVATION_SYMBOLS + GRADIENT_SYMBOLS
        found = frozenset(n for n in allowed if self.sizes[n] == nbytes)
        if not found:
            raise DerivationError(f"{self.spec.model}: {'an allocation' if sign == ALLOC else 'a free'} of {nbytes} "
                                  f"bytes at batch {self.spec.batch_size} fits no symbol of {', '.join(allowed)}")
        return Event("+" if sign == ALLOC else "-", category, found, op)

    def saved_by_component(self) -> dict[tuple[str, int | None], list[frozenset[str]]]:
        by_component: dict[tuple[str, int | None], list[frozenset[str]]] = {}
        for sid, record in self.saved_first.items():
            if sid not in self.constant and sid not in self.tracker.ignored:
                by_component.setdefault((record.component, record.layer), []).append(
                    self._event(ALLOC, sid, self.tracker.nbytes[sid], False, {sid}, set()).candidates)
        return by_component


def trace_passes(spec: StepSpec) -> Trace:
    """Forward, backward and zero_grad of a class, from one step of two micro-batches that keeps its gradients
    (zero_grad 'zeros') and a zero_grad(set_to_none=True) after it, on meta; AdamW's step is left out (its own
    traces are trace_optimizer's). Windows: forward_first and backward_fresh (micro-batch 1: no gradient yet),
    forward_later (the previous micro-batch's loss dies in it) and backward_accumulate (each weight gradient is
    added into .grad), zero_grad_zeros and zero_grad_none."""
    tracing = _Tracing(spec.replace(micro_batches=2, zero_grad="zeros", optimizer="foreach"), "meta")
    tracing.adamw.step = lambda *args, **kwargs: None  # forward and backward only: no AdamW state
    marks = tracing.step()
    with tracing.tracker:
        marks.append(tracing.tracker.mark("zero_grad"))
        tracing.adamw.zero_grad(set_to_none=True)
        marks.append(tracing.tracker.mark("end"))
    names = ("forward_first", "backward_fresh", "forward_later", "backward_accumulate", "zero_grad_zeros", None,
             "zero_grad_none")
    phases = {name: tracing.events(begin, end, name.startswith("zero_grad"))
              for name, begin, end in zip(names, marks, marks[1:]) if name}
    return Trace(phases, tracing.saved_by_component())


def trace_optimizer(spec: StepSpec, device: str) -> Trace:
    """The AdamW step of a warm-up step (its state created inside) and of the steady step after it, each ending
    with zero_grad(set_to_none=True): windows optimizer_warmup and optimizer."""
    tracing = _Tracing(spec, device)
    phases = {}
    for name in ("optimizer_warmup", "optimizer"):
        marks = tracing.step()
        phases[name] = tracing.events(marks[-2], marks[-1], True)
    return Trace(phases, {})


def _agree(first: list[Event], second: list[Event], what: str) -> list[str]:
    """Tokens from two traces of the same class: each event keeps the symbols both allow (the first in SYMBOLS
    order)."""
    if [(e.sign, e.category) for e in first] != [(e.sign, e.category) for e in second]:
        raise DerivationError(f"{what}: the two size sets give different event sequences")
    tokens = []
    for one, two in zip(first, second):
        common = [name for name in SYMBOLS if name in one.candidates & two.candidates]
        if not common:
            raise DerivationError(f"{what}: an event is {sorted(one.candidates)} at one size set and "
                                  f"{sorted(two.candidates)} at the other")
        tokens.append(token(one.sign, one.category, common[0]))
    return tokens


def segment(programs: dict[int, list[str]], what: str, base: int = 1) -> list[tuple[str, bool | str]]:
    """[(program, repeated)] with programs[L] == the segments joined, each run once (False), L times (True), L − 1
    times ("L-1") or, from base 2, L − 2 times ("L-2"), for every L >= base.

    A depth-first search over (position in the L = base trace, tokens consumed by repeated segments so far): at
    each position either a block follows base, base + 1 and base + 2 times (a segment repeated L times), or the
    three traces share a token (a fixed one), or a block follows one time fewer in each (repeated L − 1 times:
    every block but the last, whose program differs, as when the next block's checkpoint saves each block's
    output but the last's), or two fewer (L − 2). The first decomposition found must also reproduce the
    programs at every other L given (base + 3: a check)."""
    one, two, three = programs[base], programs[base + 1], programs[base + 2]
    extra = len(two) - len(one)
    fewer_runs = [(1, EVERY_BLOCK_BUT_THE_LAST), (2, EVERY_BLOCK_BUT_TWO)][:base]  # (runs fewer than L, marker)
    failed: set[tuple[int, int]] = set()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(three) + 1000))

    def repeats(block: list[str], p: int, s: int, count: int) -> bool:
        """Whether the block follows count, count + 1 and count + 2 times at p in the three traces."""
        n = len(block)
        return all(trace[p + i * s:p + i * s + (count + i) * n] == block * (count + i)
                   for i, trace in enumerate((one, two, three)))

    def blocks(p: int, s: int, fewer: int, repeated: bool | str) -> list[tuple[list[str], bool | str]] | None:
        """A segment at p that runs L − fewer times, then the rest: the shortest that leads to a decomposition."""
        count = base - fewer
        for n in range(1, extra - s + 1):
            if count and p + count * n > len(one):
                break
            block = one[p:p + n] if count else two[p + s:p + s + n]
            if len(block) == n and repeats(block, p, s, count):
                rest = search(p + count * n, s + n)
                if rest is not None:
                    return [(block, repeated)] + rest
        return None

    def fixed(p: int, s: int) -> list[tuple[list[str], bool | str]] | None:
        """A token the three traces share at p, then the rest."""
        if one[p] != two[p + s] or one[p] != three[p + 2 * s]:
            return None
        rest = search(p + 1, s)
        return None if rest is None else [([one[p]], False)] + rest

    def search(p: int, s: int) -> list[tuple[list[str], bool | str]] | None:
        if p == len(one):
            return [] if s == extra else None
        if (p, s) in failed:
            return None
        found = blocks(p, s, 0, True) or fixed(p, s)  # segments repeated L times first, then a fixed token
        for fewer, repeated in fewer_runs:
            found = found or blocks(p, s, fewer, repeated)
        if found is None:
            failed.add((p, s))
        return found

    try:
        found = search(0, 0)
    finally:
        sys.setrecursionlimit(limit)
    if found is None:
        raise DerivationError(f"{what}: no segments reproduce the traces at L = {base}, {base + 1}, {base + 2}")
    merged: list[tuple[list[str], bool | str]] = []
    for tokens, repeated in found:  # consecutive fixed tokens form one segment
        if merged and not repeated and not merged[-1][1]:
            merged[-1][0].extend(tokens)
        else:
            merged.append((list(tokens), repeated))
    for layers, program in programs.items():
        if [t for tokens, repeated in merged for t in tokens * runs(repeated, layers)] != program:
            raise DerivationError(f"{what}: the segments do not reproduce the trace at L = {layers}")
    return [(" ".join(tokens), repeated) for tokens, repeated in merged]


def _class_traces(cls: LayoutClass) -> dict[int, list[Trace]]:
    return {layers: [trace_passes(traced_spec(cls, layers, size_set, micro_batches=2))
                     for size_set in size_sets(cls)] for layers in LAYERS}


def _tokens(traces: dict[int, list[Trace]], window: str, what: str) -> dict[int, list[str]]:
    return {layers: _agree(first.phases[window], second.phases[window], f"{what}, {window}")
            for layers, (first, second) in traces.items()}


def derive_class(cls: LayoutClass, traces=None) -> dict:
    """The segments of every window of trace_passes, and saved activations by component (the symbol of each
    storage, per layer and outside the layers), of one layout class. A micro-batch after the first must leave
    nothing behind (forward_later + backward_accumulate nets to zero), so that every later one repeats it."""
    what = cls.what()
    coincident = coincident_symbols(cls)
    if coincident:
        raise DerivationError(f"{what}: the size sets make symbols coincide: {coincident}")
    traces = traces or _class_traces(cls)
    result: dict = {"domain": cls.domain}
    for window in CLASS_WINDOWS:
        result[window] = segment(_tokens(traces, window, what), f"{what}, {window}")
    forward_later, backward_accumulate = (_tokens(traces, window, what)
                                          for window in ("forward_later", "backward_accumulate"))
    if any(compile_program(" ".join(forward_later[layers] + backward_accumulate[layers]))[1].any()
           for layers in LAYERS):
        raise DerivationError(f"{what}: a micro-batch after the first leaves memory behind")
    first, second = traces[2]
    components: dict[str, dict[str, str]] = {"layer": {}, "outside": {}}
    for (component, layer), candidates in sorted(first.saved.items(), key=lambda item: str(item[0])):
        other = second.saved.get((component, layer), [])
        tokens = _agree([Event("+", "saved_activations", c) for c in candidates],
                        [Event("+", "saved_activations", c) for c in other], f"{what}, saved by {component}")
        names = " ".join(text.split(":")[1] for text in tokens)  # the symbols, one per saved storage
        where = "outside" if layer is None else "layer"
        if layer in (None, 0):
            components[where][component] = names
        elif names != components["layer"].get(component):
            raise DerivationError(f"{what}: layer {layer} saves for {component} what layer 0 does not")
    result["saved_by_component"] = {where: {name: names[name] for name in COMPONENTS if name in names}
                                    for where, names in components.items()}
    return result


def derive_optimizer(parameters: LayoutClass, optimizer: str, zero_grad: dict[int, list[str]]) -> dict:
    """The AdamW step's segments in the warm-up step (state created) and the steady state of one parameter
    layout (`parameters`: the general class of an arch, positional option and grouped-query attention or not):
    the traced optimizer window less the zero_grad(set_to_none=True) that ends it (`zero_grad`, per L, from the
    class traces)."""
    device = "cpu" if optimizer == "fused" else "meta"
    traces = {layers: [trace_optimizer(traced_spec(parameters, layers, size_set).replace(optimizer=optimizer), device)
                       for size_set in SIZE_SETS] for layers in LAYERS}
    what = f"{parameters.arch}, {parameters.positional}{', G < H' if parameters.grouped else ''}, AdamW {optimizer}"
    result = {}
    for step, window in (("warmup", "optimizer_warmup"), ("steady", "optimizer")):
        programs = _tokens(traces, window, what)
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
            zero_grad = _tokens(_class_traces(parameters), "zero_grad_none", parameters.what())
            for key in mine:
                adamw[key] = derive_optimizer(parameters, key[3], zero_grad)
    return {"classes": classes, "optimizers": adamw}


def document(derived: dict) -> dict:
    """derive()'s programs as a programs document (analytic.exact.store) of the installed torch and the simulation
    revision that derived them."""
    return {"torch_version": torch.__version__, "simulation_revision": simulation_revision(),
            "classes": {key.name(): data for key, data in derived["classes"].items()},
            "optimizers": {store.key_name(key): data for key, data in derived["optimizers"].items()}}
