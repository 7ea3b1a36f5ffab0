"""The exact model's allocation programs, derived from traces of the real step on meta (no hand-typed program).

For each layout class (positional option; B == 1 or B ≥ 2; H == 1 or H ≥ 2; T ≥ 2 throughout) the step is traced
at sizes chosen so that every allocation's byte count names one symbol of analytic.exact.sizes (a = B·T·D·e,
s = B·H·T²·e, gDF = D·F·e, ...). Each phase's event list becomes a program of tokens (`+a`, `-S`, `+gDD`:
lowercase a temporary, uppercase saved for backward, g… a gradient), and is split into
    prefix + layer × L + suffix
by tracing L = 1, 2 and 3 layers: the split must reproduce all three. Every class is traced at two unrelated size
sets, and a token keeps only the symbols that fit both, so a coincidence of sizes cannot name a tensor wrongly; a
byte count that fits no symbol stops the derivation. Saved activations by component are read off the same traces.

`derive()` returns the data that tools/derive_programs.py writes to analytic/exact/derived.py.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from analytic.exact.sizes import SYMBOLS, sizes_of
from model.config import POSITIONAL_OPTIONS, ModelConfig
from model.step import build, make_batch, train_step
from model.vocabulary import COMPONENTS, MARKS
from profiler.measuring.tracker import ALLOC, SavedTensorRecorder, StorageTracker

TRACED_PHASES = ("forward", "backward")
# Two unrelated size sets (primes where the model allows; an even head size for RoPE; 4- and 2-byte elements, so
# that a size in bytes per element is told apart from a fixed one); B and H are set per class.
SIZE_SETS = ({"batch": 3, "heads": 3, "head_dim": 6, "T": 7, "F": 29, "V": 37, "dtype": "float32"},
             {"batch": 5, "heads": 2, "head_dim": 10, "T": 11, "F": 23, "V": 41, "dtype": "bfloat16"})
# The domain of each class, keyed by (B == 1, H == 1).
DOMAINS = {(False, False): "B >= 2, H >= 2, T >= 2", (True, False): "B == 1, H >= 2, T >= 2",
           (False, True): "B >= 2, H == 1, T >= 2", (True, True): "B == 1, H == 1, T >= 2"}


class DerivationError(RuntimeError):
    """The traced step does not fit the model's form: a size that names no symbol, or no layer period."""


@dataclass
class Trace:
    """One traced steady-state step: per phase, each event as (sign, candidate symbols, saved, gradient)."""

    phases: dict[str, list[tuple[str, frozenset[str], bool]]]
    saved: dict[tuple[str, int | None], list[frozenset[str]]]  # (component, layer) -> candidates of each storage


def traced_config(positional: str, batch_one: bool, head_one: bool, layers: int, size_set: dict):
    heads = 1 if head_one else size_set["heads"]
    config = ModelConfig(vocab_size=size_set["V"], context_length=size_set["T"], num_layers=layers,
                         d_model=heads * size_set["head_dim"], num_heads=heads, d_ff=size_set["F"],
                         positional=positional, dtype=size_set["dtype"])
    return config, 1 if batch_one else size_set["batch"]


def symbol_sizes(config: ModelConfig, batch: int) -> dict[str, int]:
    return {name: int(value) for name, value in sizes_of(config, batch).symbols().items()}


def trace(config: ModelConfig, batch: int) -> Trace:
    """The measured (second) step of `config` at `batch` on meta, as candidate symbols per allocation."""
    sizes = symbol_sizes(config, batch)
    tracker = StorageTracker("meta")
    with tracker:
        model, adamw = build(config, "meta")
        tokens, targets = make_batch(config, batch, "meta")
        train_step(model, adamw, tokens, targets)  # the warm-up: AdamW creates its state
    recorder = SavedTensorRecorder(model, tracker)
    gradients: set[int] = set()
    marks = {}

    def mark(name):
        marks[name] = tracker.mark(name)
        if name == "optimizer":
            gradients.update(tracker.sid(p.grad) for p in model.parameters())

    constant = {tracker.sid(t) for t in [*model.parameters(), *model.buffers(), tokens, targets]}
    with recorder.recording(), tracker:
        train_step(model, adamw, tokens, targets, mark)
    recorder.remove()
    saved = set(recorder.saved) - constant

    def candidates(nbytes: int, gradient: bool) -> frozenset[str]:
        found = frozenset(n for n, size in sizes.items() if size == nbytes and n.startswith("g") == gradient)
        if not found:
            raise DerivationError(f"{config}: an allocation of {nbytes} bytes at batch {batch} fits no symbol of "
                                  f"{', '.join(SYMBOLS)}")
        return found

    phases = {}
    for phase, end in zip(TRACED_PHASES, MARKS[1:]):
        events = tracker.events[marks[phase].event_index:marks[end].event_index]
        phases[phase] = [("+" if sign == ALLOC else "-", candidates(nbytes, sid in gradients), sid in saved)
                         for sign, sid, nbytes in events]
    by_component: dict[tuple[str, int | None], list[frozenset[str]]] = {}
    for sid, record in recorder.saved.items():
        if sid in saved:
            by_component.setdefault((record.component, record.layer), []).append(
                candidates(tracker.nbytes[sid], False))
    return Trace(phases, by_component)


def _agree(first: list, second: list, what: str) -> list[str]:
    """Token names from two traces of the same class: each event keeps the symbols both allow (the first in
    SYMBOLS order), uppercase where saved."""
    if [(sign, saved) for sign, _, saved in first] != [(sign, saved) for sign, _, saved in second]:
        raise DerivationError(f"{what}: the two size sets give different event sequences")
    tokens = []
    for (sign, one, saved), (_, two, _) in zip(first, second):
        common = [name for name in SYMBOLS if name in one & two]
        if not common:
            raise DerivationError(f"{what}: an event is {sorted(one)} at one size set and {sorted(two)} at the other")
        name = common[0]
        tokens.append(sign + (name.upper() if saved else name))
    return tokens


def split(programs: dict[int, list[str]], what: str) -> tuple[str, str, str]:
    """(prefix, layer, suffix) with programs[L] == prefix + layer·L + suffix for every traced L."""
    period = len(programs[2]) - len(programs[1])
    three = programs[3]
    for start in range(len(programs[1]) - period + 1):
        prefix, layer = three[:start], three[start:start + period]
        suffix = three[start + 3 * period:]
        if all(programs[n] == prefix + layer * n + suffix for n in programs):
            return " ".join(prefix), " ".join(layer), " ".join(suffix)
    raise DerivationError(f"{what}: no prefix + layer × L + suffix reproduces the traces at L = {sorted(programs)}")


def derive_class(positional: str, batch_one: bool, head_one: bool) -> dict:
    """Programs and saved activations by component (the symbol of each storage, per layer and outside the
    layers) of one layout class."""
    what = f"{positional}, {DOMAINS[(batch_one, head_one)]}"
    traces = {layers: [trace(*traced_config(positional, batch_one, head_one, layers, size_set))
                       for size_set in SIZE_SETS] for layers in (1, 2, 3)}
    result: dict = {"domain": DOMAINS[(batch_one, head_one)]}
    for phase in TRACED_PHASES:
        programs = {layers: _agree(first.phases[phase], second.phases[phase], f"{what}, {phase}")
                    for layers, (first, second) in traces.items()}
        result[phase] = split(programs, f"{what}, {phase}")
    first, second = traces[2]
    components: dict[str, dict[str, str]] = {"layer": {}, "outside": {}}
    for (component, layer), candidates in sorted(first.saved.items(), key=lambda item: str(item[0])):
        other = second.saved.get((component, layer), [])
        tokens = _agree([("+", c, False) for c in candidates], [("+", c, False) for c in other],
                        f"{what}, saved by {component}")
        names = " ".join(token[1:].lower() for token in tokens)  # the symbols, one per saved storage
        where = "outside" if layer is None else "layer"
        if layer in (None, 0):
            components[where][component] = names
        elif names != components["layer"].get(component):
            raise DerivationError(f"{what}: layer {layer} saves for {component} what layer 0 does not")
    result["saved_by_component"] = {where: {name: names[name] for name in COMPONENTS if name in names}
                                    for where, names in components.items()}
    return result


def derive() -> dict:
    """Every class: {(positional, B == 1, H == 1): {"domain", "forward", "backward", "saved_by_component"}}."""
    return {(positional, batch_one, head_one): derive_class(positional, batch_one, head_one)
            for positional in POSITIONAL_OPTIONS
            for batch_one, head_one in itertools.product((False, True), repeat=2)}


def render(classes: dict) -> str:
    """analytic/exact/derived.py's text."""
    lines = ['"""The exact model\'s allocation programs, derived from traces of the step on meta by',
             "profiler/measuring/derive.py: generated by `python tools/derive_programs.py`, do not edit.",
             "",
             "Key: (positional, B == 1, H == 1). forward/backward: (prefix, one layer, suffix) token programs over the",
             'symbols of analytic.exact.sizes; saved_by_component: per layer and outside the layers."""',
             f"TORCH_VERSION = {torch.__version__!r}",
             "CLASSES = {"]
    for key, data in classes.items():
        lines.append(f"    {key!r}: {{")
        lines.append(f"        \"domain\": {data['domain']!r},")
        for phase in TRACED_PHASES:
            lines.append(f"        {phase!r}: (")
            lines += [f"            {part!r}," for part in data[phase]]
            lines.append("        ),")
        lines.append(f"        \"saved_by_component\": {data['saved_by_component']!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"
