"""The exact model's allocation programs, derived from traces of the real step (no hand-typed program).

For each layout class (positional option; B == 1 or B ≥ 2; H == 1 or H ≥ 2; T ≥ 2 throughout) the step is traced
at sizes chosen so that every allocation's byte count names one symbol of analytic.sizes (a = B·T·D·e,
s = B·H·T²·e, gDF = D·F·e, k = 4, ...). Each phase's event list becomes a program of tokens: `+a` a temporary,
`-S` a tensor saved for backward, `+gDD` a weight gradient, `+opt:gDF` an AdamW temporary, `+state:gVD` AdamW
state. A phase is split into segments, each run once or L times (one per block, or per block's parameters):
    c0 + X1 × L + c1 + X2 × L + ... + ck
found from traces with L = 1, 2 and 3 layers (the exact tests check larger L). Every class is traced at two
unrelated size sets (fp32 and bf16), and a token keeps only the symbols that fit both, so a coincidence of sizes
cannot name a tensor wrongly (and 4-byte step counters are told from e-byte scalars); a byte count that fits no
symbol stops the derivation. Saved activations by component come from the same traces.

Forward and backward are traced on meta with foreach AdamW, for every layout class. The AdamW step (warm-up step,
which creates the state, and steady state) is traced per positional option and implementation in the general
layout: on meta for foreach and for-loop, on CPU for fused (which has no meta kernel).

`derive()` returns the data that tools/derive_programs.py writes to analytic/exact/derived.py.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass

import torch

from analytic.sizes import SYMBOLS, sizes_of
from model.config import CHECKPOINTING_OPTIONS, POSITIONAL_OPTIONS, ModelConfig
from model.step import build, make_batch, train_step
from model.vocabulary import COMPONENTS, OPTIMIZERS
from profiler.measuring.measure import kept_ops, on_op
from profiler.measuring.tracker import ALLOC, SavedTensorRecorder, StorageTracker

TRACED_PHASES = ("forward", "backward")
LAYERS = (1, 2, 3)
# Two unrelated size sets (primes where the model allows; an even head size for RoPE; 4- and 2-byte elements, so
# that a size in bytes per element is told apart from a fixed one); B and H are set per class.
SIZE_SETS = ({"batch": 3, "heads": 3, "head_dim": 6, "T": 7, "F": 29, "V": 37, "dtype": "float32"},
             {"batch": 5, "heads": 2, "head_dim": 10, "T": 11, "F": 23, "V": 41, "dtype": "bfloat16"})
# The domain of each class, keyed by (B == 1, H == 1).
DOMAINS = {(False, False): "B >= 2, H >= 2, T >= 2", (True, False): "B == 1, H >= 2, T >= 2",
           (False, True): "B >= 2, H == 1, T >= 2", (True, True): "B == 1, H == 1, T >= 2"}
ACTIVATION_SYMBOLS = tuple(name for name in SYMBOLS if not name.startswith("g") and name != "k")
GRADIENT_SYMBOLS = tuple(name for name in SYMBOLS if name.startswith("g"))
PARAMETER_SIZED = GRADIENT_SYMBOLS + ("k",)


class DerivationError(RuntimeError):
    """The traced step does not fit the model's form: a size that names no symbol, or no segments."""


@dataclass
class Event:
    sign: str  # "+" or "-"
    marker: str  # "" a temporary, "S" saved for backward, "g" a gradient, "opt:" / "state:" AdamW's
    candidates: frozenset[str]  # the symbols whose size it has


@dataclass
class Trace:
    """One traced warm-up and steady-state step: events per phase ("optimizer_warmup" for the warm-up's AdamW
    step), and the candidates of each storage saved, by (component, layer)."""

    phases: dict[str, list[Event]]
    saved: dict[tuple[str, int | None], list[frozenset[str]]]


def traced_config(positional: str, batch_one: bool, head_one: bool, layers: int, size_set: dict,
                  checkpointing: str = "none"):
    heads = 1 if head_one else size_set["heads"]
    config = ModelConfig(vocab_size=size_set["V"], context_length=size_set["T"], num_layers=layers,
                         d_model=heads * size_set["head_dim"], num_heads=heads, d_ff=size_set["F"],
                         positional=positional, dtype=size_set["dtype"], checkpointing=checkpointing)
    return config, 1 if batch_one else size_set["batch"]


def trace(config: ModelConfig, batch: int, optimizer: str = "foreach", device: str = "meta",
          adamw_steps: bool = True) -> Trace:
    """The warm-up and measured steps of `config` at `batch`, as candidate symbols per allocation and free;
    without `adamw_steps`, the warm-up step alone and its forward and backward (the same as any step's: the
    AdamW state they do not touch is all that differs)."""
    sizes = {name: int(value) for name, value in sizes_of(config, batch).symbols().items()}
    tracker = StorageTracker(device)
    with tracker:
        model, adamw = build(config, device, optimizer)
        tokens, targets = make_batch(config, batch, device)
    recorder = SavedTensorRecorder(model, tracker, kept_ops(config))
    constant = {tracker.sid(t) for t in [*model.parameters(), *model.buffers(), tokens, targets]}
    marks: dict[str, dict] = {}
    gradients: set[int] = set()
    steps = ("warmup", "measured") if adamw_steps else ("warmup",)
    for step in steps:
        step_marks = marks[step] = {}

        def mark(name, step_marks=step_marks):
            step_marks[name] = tracker.mark(name)
            tracker.ignore_host_scalars = device == "cpu" and optimizer != "fused" and name == "optimizer"
            if name == "optimizer":
                gradients.update(tracker.sid(p.grad) for p in model.parameters())

        recorder.saved = {}
        tracker.on_op = on_op(recorder, None, step_marks)  # as a measurement does: selective's kept outputs
        with recorder.recording(), tracker:
            train_step(model, adamw, tokens, targets, mark)
    recorder.remove()
    saved = set(recorder.saved) - constant
    state = {tracker.sid(t) for s in adamw.state.values() for t in s.values()
             if isinstance(t, torch.Tensor) and tracker.sid(t) is not None}

    def event(sign: int, sid: int, nbytes: int, in_optimizer: bool) -> Event:
        if sid in gradients:
            marker, allowed = "g", GRADIENT_SYMBOLS
        elif sid in state:
            marker, allowed = "state:", PARAMETER_SIZED
        elif in_optimizer:
            marker, allowed = "opt:", PARAMETER_SIZED
        else:
            marker, allowed = ("S" if sid in saved else ""), ACTIVATION_SYMBOLS
        found = frozenset(n for n in allowed if sizes[n] == nbytes)
        if not found:
            raise DerivationError(f"{config}: {'an allocation' if sign == ALLOC else 'a free'} of {nbytes} bytes "
                                  f"at batch {batch} fits no symbol of {', '.join(allowed)}")
        return Event("+" if sign == ALLOC else "-", marker, found)

    phases = {}
    for name, step, phase, end in (("forward", steps[-1], "forward", "backward"),
                                   ("backward", steps[-1], "backward", "optimizer"),
                                   ("optimizer", "measured", "optimizer", "end"),
                                   ("optimizer_warmup", "warmup", "optimizer", "end")):
        if step not in marks:
            continue
        start, stop = marks[step][phase].event_index, marks[step][end].event_index
        phases[name] = [event(sign, sid, nbytes, phase == "optimizer")
                        for sign, sid, nbytes in tracker.events[start:stop] if nbytes]  # 0 bytes: no memory
    by_component: dict[tuple[str, int | None], list[frozenset[str]]] = {}
    for sid, record in recorder.saved.items():
        if sid in saved:
            by_component.setdefault((record.component, record.layer), []).append(
                event(ALLOC, sid, tracker.nbytes[sid], False).candidates)
    return Trace(phases, by_component)


def _agree(first: list[Event], second: list[Event], what: str) -> list[str]:
    """Tokens from two traces of the same class: each event keeps the symbols both allow (the first in SYMBOLS
    order)."""
    if [(e.sign, e.marker) for e in first] != [(e.sign, e.marker) for e in second]:
        raise DerivationError(f"{what}: the two size sets give different event sequences")
    tokens = []
    for one, two in zip(first, second):
        common = [name for name in SYMBOLS if name in one.candidates & two.candidates]
        if not common:
            raise DerivationError(f"{what}: an event is {sorted(one.candidates)} at one size set and "
                                  f"{sorted(two.candidates)} at the other")
        name = common[0]
        if one.marker == "S":
            tokens.append(one.sign + name.upper())
        elif one.marker in ("opt:", "state:"):
            tokens.append(one.sign + one.marker + name)
        else:
            tokens.append(one.sign + name)
    return tokens


def segment(programs: dict[int, list[str]], what: str) -> list[tuple[str, bool]]:
    """[(program, repeated)] with programs[L] == the segments joined, each repeated one L times, for every L.

    A depth-first search over (position in the L = 1 trace, tokens consumed by repeated segments so far): at each
    position either the three traces share a token (a fixed one), or a block follows once, twice and three times
    (a repeated segment). The first decomposition found must also reproduce the L = 4 trace."""
    one, two, three = programs[1], programs[2], programs[3]
    extra = len(two) - len(one)
    failed: set[tuple[int, int]] = set()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(three) + 1000))

    def search(p: int, s: int) -> list[tuple[list[str], bool]] | None:
        if p == len(one):
            return [] if s == extra else None
        if (p, s) in failed:
            return None
        for n in range(1, min(len(one) - p, extra - s) + 1):
            block = one[p:p + n]
            if two[p + s:p + s + 2 * n] == block * 2 and three[p + 2 * s:p + 2 * s + 3 * n] == block * 3:
                rest = search(p + n, s + n)
                if rest is not None:
                    return [(block, True)] + rest
        if one[p] == two[p + s] == three[p + 2 * s]:
            rest = search(p + 1, s)
            if rest is not None:
                return [([one[p]], False)] + rest
        failed.add((p, s))
        return None

    try:
        found = search(0, 0)
    finally:
        sys.setrecursionlimit(limit)
    if found is None:
        raise DerivationError(f"{what}: no segments reproduce the traces at L = 1, 2, 3")
    merged: list[tuple[list[str], bool]] = []
    for tokens, repeated in found:  # consecutive fixed tokens form one segment
        if merged and not repeated and not merged[-1][1]:
            merged[-1][0].extend(tokens)
        else:
            merged.append((list(tokens), repeated))
    for layers, program in programs.items():
        if [t for tokens, repeated in merged for t in tokens * (layers if repeated else 1)] != program:
            raise DerivationError(f"{what}: the segments do not reproduce the trace at L = {layers}")
    return [(" ".join(tokens), repeated) for tokens, repeated in merged]


def _traces(positional: str, batch_one: bool, head_one: bool, optimizer: str = "foreach", device: str = "meta",
            checkpointing: str = "none", adamw_steps: bool = True) -> dict[int, list[Trace]]:
    return {layers: [trace(*traced_config(positional, batch_one, head_one, layers, size_set, checkpointing),
                           optimizer, device, adamw_steps)
                     for size_set in SIZE_SETS] for layers in LAYERS}


def _programs(traces: dict[int, list[Trace]], phase: str, what: str) -> list[tuple[str, bool]]:
    programs = {layers: _agree(first.phases[phase], second.phases[phase], f"{what}, {phase}")
                for layers, (first, second) in traces.items()}
    return segment(programs, f"{what}, {phase}")


def derive_class(positional: str, batch_one: bool, head_one: bool, checkpointing: str = "none",
                 traces=None) -> dict:
    """Forward and backward segments and saved activations by component (the symbol of each storage, per layer
    and outside the layers) of one layout class."""
    what = f"{positional}, checkpointing {checkpointing}, {DOMAINS[(batch_one, head_one)]}"
    traces = traces or _traces(positional, batch_one, head_one, checkpointing=checkpointing)
    result: dict = {"domain": DOMAINS[(batch_one, head_one)]}
    for phase in TRACED_PHASES:
        result[phase] = _programs(traces, phase, what)
    first, second = traces[2]
    components: dict[str, dict[str, str]] = {"layer": {}, "outside": {}}
    for (component, layer), candidates in sorted(first.saved.items(), key=lambda item: str(item[0])):
        other = second.saved.get((component, layer), [])
        tokens = _agree([Event("+", "", c) for c in candidates], [Event("+", "", c) for c in other],
                        f"{what}, saved by {component}")
        names = " ".join(token[1:] for token in tokens)  # the symbols, one per saved storage
        where = "outside" if layer is None else "layer"
        if layer in (None, 0):
            components[where][component] = names
        elif names != components["layer"].get(component):
            raise DerivationError(f"{what}: layer {layer} saves for {component} what layer 0 does not")
    result["saved_by_component"] = {where: {name: names[name] for name in COMPONENTS if name in names}
                                    for where, names in components.items()}
    return result


def derive_optimizer(positional: str, optimizer: str, traces=None) -> dict:
    """The AdamW step's segments in the warm-up step (state created) and the steady state."""
    device = "cpu" if optimizer == "fused" else "meta"
    traces = traces or _traces(positional, False, False, optimizer, device)
    what = f"{positional}, AdamW {optimizer}"
    return {"warmup": _programs(traces, "optimizer_warmup", what), "steady": _programs(traces, "optimizer", what)}


def derive() -> dict:
    """{"classes": {(positional, checkpointing, B == 1, H == 1): class data},
    "optimizers": {(positional, optimizer): data}}."""
    classes, optimizers = {}, {}
    for positional in POSITIONAL_OPTIONS:
        for checkpointing in CHECKPOINTING_OPTIONS:
            for batch_one, head_one in itertools.product((False, True), repeat=2):
                with_adamw = not (batch_one or head_one) and checkpointing == "none"  # shared with foreach's
                traces = _traces(positional, batch_one, head_one, checkpointing=checkpointing,
                                 adamw_steps=with_adamw)
                classes[(positional, checkpointing, batch_one, head_one)] = derive_class(
                    positional, batch_one, head_one, checkpointing, traces)
                if with_adamw:
                    optimizers[(positional, "foreach")] = derive_optimizer(positional, "foreach", traces)
        for optimizer in OPTIMIZERS:
            if optimizer != "foreach":
                optimizers[(positional, optimizer)] = derive_optimizer(positional, optimizer)
    return {"classes": classes, "optimizers": optimizers}


def _segments(lines: list[str], name: str, segments: list[tuple[str, bool]], indent: str) -> None:
    lines.append(f"{indent}{name!r}: [")
    lines += [f"{indent}    ({program!r}, {repeated}),  # {'× L' if repeated else 'once'}"
              for program, repeated in segments]
    lines.append(f"{indent}],")


def render(derived: dict) -> str:
    """analytic/exact/derived.py's text."""
    lines = ['"""The exact model\'s allocation programs, derived from traces of the step by',
             "profiler/measuring/derive.py: generated by `python tools/derive_programs.py`, do not edit.",
             "",
             "CLASSES key: (positional, checkpointing, B == 1, H == 1); forward/backward: [(program, repeated L",
             "times)] over the symbols of analytic.sizes; saved_by_component: per layer and outside the layers.",
             'OPTIMIZERS key: (positional, AdamW implementation); the warm-up step\'s and the steady AdamW step."""',
             f"TORCH_VERSION = {torch.__version__!r}",
             "CLASSES = {"]
    for key, data in derived["classes"].items():
        lines.append(f"    {key!r}: {{")
        lines.append(f"        \"domain\": {data['domain']!r},")
        for phase in TRACED_PHASES:
            _segments(lines, phase, data[phase], " " * 8)
        lines.append(f"        \"saved_by_component\": {data['saved_by_component']!r},")
        lines.append("    },")
    lines += ["}", "OPTIMIZERS = {"]
    for key, data in derived["optimizers"].items():
        lines.append(f"    {key!r}: {{")
        for step in ("warmup", "steady"):
            _segments(lines, step, data[step], " " * 8)
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"
