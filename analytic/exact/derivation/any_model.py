"""The exact model of any model's step, derived from traces of its code: derive_model(spec) and verify().

The derivation of the shipped programs (analytic.exact.derivation.derive) with an alphabet and windows of its own:
the step of `spec` (a user's model, FILE.py:NAME, or a Hugging Face one, hf:gpt2) is traced on meta as measure()
traces it (analytic.exact.derivation.trace: a warm-up step, then the measured one; every window of both, and what
happens between them) at three unrelated size sets (SIZE_SETS: primes, head sizes 8 times a prime; GROUPED_SETS
with G key/value heads for grouped-query attention) and L = 1, 2 and 3 layers. Each window's events (allocations
and frees, by category as measure() categorises them) are fitted (analytic.exact.derivation.fit) to a
MonomialAlphabet: every storage's bytes must be an integer count times one monomial of the sizes
(analytic.exact.monomials), or a sum of two, at all three sets; the count includes the element size (one dtype per
derivation). The tokens `+A:4*B*T*H*Dh` are split into segments run once, L times or L − 1 times (fit.segment);
the parameters, buffers and inputs live when the warm-up step starts are the constant part, once + L·per layer (a
storage the model's construction leaves behind is part of it, in its own category), and so is what autograd saved
in the measured step, by the op that allocated it. The FLOPs the same traces count in the measured step are fitted
too (analytic.exact.derivation.flop_fit). The result is a document of analytic.exact.model_programs.

The domain is the traced one: B >= 2, H >= 2, T >= 2, head sizes that are multiples of 8, and as many key/value
heads as heads or 2 <= G < H grouped ones (B = 1 and H = 1 are layout classes of their own, traced there: `ones`);
one micro-batch, with either zero_grad. Where the step does not fit the form (a byte count that no monomial, nor a sum
of two, fits at all three sets; an event sequence that changes with a size; segments that do not reproduce L = 1,
2, 3), DerivationError says which op, in which module, at which sizes. verify() compares the derived model and its
formulas with measure() at random held-out sizes.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import torch

from analytic.exact import monomials
from analytic.exact.derivation.flop_fit import flop_document
from analytic.exact.derivation.fit import DerivationError, MonomialAlphabet, fit, once_per_layer, segment
from analytic.exact.derivation.revision import simulation_revision
from analytic.exact.derivation.trace import Event, describe, trace
from analytic.exact.model_programs import CONSTANT, ModelPrograms
from analytic.exact.programs import parse_term
from model.spec import StepSpec
from model.vocabulary import PHASES
from profiler.measuring.measure import measure

LAYERS = (1, 2, 3)
# Three unrelated size sets: primes, and head sizes 8 times a prime (a model may call SDPA whatever the attention
# option, and its fused kernels pad other head sizes, which is not simulated; RoPE rotates halves); T on both sides
# of 32, so that T32 = ⌈T/32⌉·32 (the efficient kernel's logsumexp rows) is told from 32 and from T.
SIZE_SETS = ({"B": 3, "T": 7, "H": 5, "Dh": 8 * 11, "F": 13, "V": 17},
             {"B": 5, "T": 37, "H": 3, "Dh": 8 * 7, "F": 19, "V": 23},
             {"B": 7, "T": 71, "H": 11, "Dh": 8 * 5, "F": 29, "V": 41})
# Grouped-query attention: G key/value heads, H = r·G query heads with r = 5, 7, 2 (a monomial in G is told from
# one in H)
GROUPED_SETS = tuple(dict(sizes, H=heads, G=kv_heads)
                     for sizes, heads, kv_heads in zip(SIZE_SETS, (15, 14, 22), (3, 2, 11)))
DOMAIN = "B >= 2, H >= 2, T >= 2, a head size D/H that is a multiple of 8"
KV_DOMAIN = {False: "kv heads = heads", True: "2 <= G < H key/value heads"}
MULTI_QUERY_DOMAIN = "one key/value head (G = 1, multi-query)"


def domain_of(ones: tuple[str, ...] = ()) -> str:
    """DOMAIN, with B = 1 and H = 1 where `ones` names them (their own layout classes)."""
    return DOMAIN.replace("B >= 2", "B = 1" if "B" in ones else "B >= 2").replace(
        "H >= 2", "H = 1" if "H" in ones else "H >= 2")


def traced_spec(spec: StepSpec, layers: int, sizes: dict) -> StepSpec:
    return spec.replace(num_layers=layers, batch_size=sizes["B"], context_length=sizes["T"], num_heads=sizes["H"],
                        kv_heads=sizes.get("G", sizes["H"]), d_model=sizes["H"] * sizes["Dh"], d_ff=sizes["F"],
                        vocab_size=sizes["V"], micro_batches=1)


def _fit(groups: list[list[Event]], sets: list[dict], spec: StepSpec, layers: int, what: str) -> list[str]:
    """fit() to count × monomial (in G too where the sets have grouped key/value heads), each set described as
    the spec at L = layers."""
    return fit(groups, sets, MonomialAlphabet(sets[0].get("G", 1) > 1), what,
               [describe(traced_spec(spec, layers, sizes)) for sizes in sets])


def derivable(spec: StepSpec, ones: tuple[str, ...] = ()) -> None:
    """DerivationError where the setup is one the derivation does not cover (micro-batches), or where multi-query
    attention is asked for outside its own layout class (`ones` naming G)."""
    if spec.setup.micro_batches != 1:
        raise DerivationError("the exact model of a model's own code is derived for one micro-batch (the default)")
    if spec.model.kv_heads == 1 < spec.model.num_heads and "H" not in ones and "G" not in ones:
        raise DerivationError("multi-query attention (one key/value head) is a layout class of its own: derive it "
                              "with G among the sizes that are 1 (analytic.exact.model_programs.layout_of)")


def derive_model(spec: StepSpec, ones: tuple[str, ...] = ()) -> dict:
    """The document (analytic.exact.model_programs) of the step of `spec` (its model source, setup and dtype; its
    sizes are not used); with `ones` ("B", "H", "G" or several), of the layout class where those sizes are 1 (traced
    there: a monomial's B is then 1, and the fit names the one without it; G = 1 is multi-query attention)."""
    derivable(spec, ones)
    started = time.perf_counter()
    grouped = grouped_of(spec)
    sets = [dict(sizes, **dict.fromkeys(ones, 1)) for sizes in (GROUPED_SETS if grouped else SIZE_SETS)]
    traces = {layers: [trace(traced_spec(spec, layers, sizes), count_flops=True) for sizes in sets]
              for layers in LAYERS}
    segments = []
    for window in traces[1][0].windows:
        programs = {}
        for layers in LAYERS:
            events = [traced.windows[window] for traced in traces[layers]]
            for event in events[0]:
                if event.category in CONSTANT:
                    raise DerivationError(f"{window}: {event.op} in {event.module or 'backward'} "
                                          f"{'allocates' if event.sign == '+' else 'frees'} {event.category} during "
                                          f"the step")
            programs[layers] = _fit(events, sets, spec, layers, window)
        step, _, phase = window.partition(".")
        segments.append([phase or "between", step if phase else "between", segment(programs, window)])
    constant = {category: per_layer_fit([[[e for e in traced.constant if e.category == category]
                                          for traced in traces[layers]] for layers in LAYERS],
                                        sets, spec, f"the {category}")
                for category in sorted({event.category for traced in traces[1] for event in traced.constant})}
    saved_by_op = {op: per_layer_fit([[[s for s in traced.saved if s.op == op] for traced in traces[layers]]
                                      for layers in LAYERS], sets, spec, f"saved by {op}")
                   for op in sorted({s.op for traced in traces[LAYERS[-1]] for s in traced.saved})}
    symbols = sorted({parse_term(term)[3] for _, _, segs in segments for program, _ in segs for term in program.split()}
                     | {s for once, per_layer in constant.values() for s in (*once, *per_layer)}
                     | {s for once, per_layer in saved_by_op.values() for s in (*once, *per_layer)},
                     key=lambda s: (sum(monomials.powers(s)), s))
    try:
        flops = flop_document({layers: [traced.flops for traced in traces[layers]] for layers in LAYERS}, sets,
                              grouped, {layers: [describe(traced_spec(spec, layers, sizes)) for sizes in sets]
                                        for layers in LAYERS},
                              {layers: [sum(e.nbytes for e in traced.constant if e.category == "parameters")
                                        for traced in traces[layers]] for layers in LAYERS},
                              constant.get("parameters", [{}, {}]))
    except DerivationError as error:
        flops = {"flops_error": str(error)}
    return {**flops, "source": spec.model.source, "optimizer": spec.setup.optimizer_class or spec.setup.optimizer,
            "dtype": spec.setup.dtype, "torch_version": torch.__version__,
            "simulation_revision": simulation_revision(),
            "domain": f"{domain_of(ones)}, {MULTI_QUERY_DOMAIN if 'G' in ones else KV_DOMAIN[grouped]}",
            "grouped": grouped, "ones": list(ones),
            "symbols": symbols, "constant": constant, "windows": segments,
            "saved_by_op": saved_by_op, "seconds": round(time.perf_counter() - started, 2)}


def per_layer_fit(storages: list[list[list[Event]]], sets: list[dict], spec: StepSpec, what: str) -> list[dict]:
    """[once, per layer] ({monomial: count} each) of storages traced at L = 1, 2, 3 (`storages`, in LAYERS order:
    each a list per size set): their bytes summed by monomial must be once + L × per layer at every L."""
    counts = {}
    for layers, stored in zip(LAYERS, storages):
        counts[layers] = Counter()
        for token in _fit(stored, sets, spec, layers, what) if stored[0] else ():
            _, _, count, symbol = parse_term(token)
            counts[layers][symbol] += count
    return once_per_layer(counts, f"{what}: the bytes")


def grouped_of(spec: StepSpec) -> bool:
    """Whether the spec has grouped-query attention (2 <= G < H)."""
    return 1 < spec.model.kv_heads < spec.model.num_heads


def held_out_sizes(count: int, seed: int = 0, grouped: bool = False, ones: tuple[str, ...] = ()) -> list[dict]:
    """`count` random sizes in the domain, none of them a traced set: B 2..9, T 2..100, H 2..6, a head size 8..48 (a
    multiple of 8, as traced), F 2..64, V 2..97, L 1..5; with `grouped`, G 2..3 key/value heads and H 2 or 3 times
    G; the sizes `ones` names 1."""
    rng = random.Random(seed)
    chosen = []
    for _ in range(count):
        sizes = {"B": rng.randint(2, 9), "T": rng.randint(2, 100), "H": rng.randint(2, 6), "Dh": 8 * rng.randint(1, 6),
                 "F": rng.randint(2, 64), "V": rng.randint(2, 97), "L": rng.randint(1, 5)}
        sizes.update(dict.fromkeys(ones, 1))
        if grouped:
            sizes["G"] = rng.randint(2, 3)
            sizes["H"] = sizes["G"] * rng.randint(2, 3)
        chosen.append(sizes)
    return chosen


def compare(programs: ModelPrograms, measured: dict, sizes: dict) -> list[str]:
    """Where the derived model differs from `measured` (measure() on meta at `sizes`: each phase's peak, start and
    end, the categories at the step's peak, the step's peak and phase, saved activations): [] where it equals it."""
    predicted = programs.figures(sizes)
    wrong = []
    for key in ("peak_bytes", "peak_phase", "saved_activations_bytes"):
        if measured[key] != predicted[key].item():
            wrong.append(f"{key}: measured {measured[key]}, derived {predicted[key].item()}")
    for phase in PHASES:
        for key in ("peak_bytes", "start_bytes", "end_bytes"):
            got, want = predicted["phases"][phase][key].item(), measured["phases"][phase][key]
            if got != want:
                wrong.append(f"{phase} {key}: measured {want}, derived {got}")
    for name, value in measured["categories_at_peak"].items():
        derived = predicted["categories_at_peak"][name].item()
        if derived != value:
            wrong.append(f"{name} at the peak: measured {value}, derived {derived}")
    return [f"at {sizes}: {text}" for text in wrong]


def verify(document: dict, spec: StepSpec, count: int = 3, seed: int = 0) -> dict:
    """The derived model against measure() at `count` random held-out sizes (held_out_sizes): the numeric model's
    figures (compare), and the formulas' (ModelPrograms.formulas: each phase's peak, the step's, saved activations)
    where the sizes are in their domain (L >= 2 where a moment exists from L = 2 on only), and the FLOP formulas
    (ModelPrograms.flop_formulas, every L) against measure()'s FLOPs. {"sizes": [...], "formulas_at": how many
    sizes the formulas were checked at, "differences": [...], "flops_at": how many sizes the FLOP formulas were
    checked at, "flop_differences": [...]}, recorded in the document as "verified"."""
    from analytic.exact.formula import evaluate

    programs = ModelPrograms(document)
    chosen = held_out_sizes(count, seed, document.get("grouped", False), tuple(document.get("ones", ())))
    differences, formulas_at, flop_differences = [], 0, []
    expressions, flop_expressions = programs.formulas(), programs.flop_formulas()
    for sizes in chosen:
        measured = measure(traced_spec(spec, sizes["L"], sizes), "meta", count_flops=bool(flop_expressions)).measured
        differences += compare(programs, measured, sizes)
        values = {"L": sizes["L"], "B": sizes["B"], "T": sizes["T"], "D": sizes["H"] * sizes["Dh"], "H": sizes["H"],
                  "G": sizes.get("G", sizes["H"]),
                  "F": sizes["F"], "V": sizes["V"]}
        for key, expression in flop_expressions.items():
            field, phase = key.split(".")
            got, want = evaluate(expression, values), measured[field][phase]
            if got != want:
                flop_differences.append(f"{describe(traced_spec(spec, sizes['L'], sizes))}: the formula of {key} "
                                        f"gives {got}, measured {want}")
        if programs.late and sizes["L"] < 2:
            continue
        formulas_at += 1
        for key in ("peak_bytes", "saved_activations_bytes", *(f"phases.{phase}.peak_bytes" for phase in PHASES)):
            want = measured[key] if "." not in key else measured["phases"][key.split(".")[1]]["peak_bytes"]
            got = evaluate(expressions[key], values)
            if got != want:
                differences.append(f"{describe(traced_spec(spec, sizes['L'], sizes))}: the formula of {key} gives "
                                   f"{got}, measured {want}")
    document["verified"] = {"sizes": chosen, "formulas_at": formulas_at, "differences": differences,
                            "flops_at": len(chosen) if flop_expressions else 0, "flop_differences": flop_differences}
    return document["verified"]
