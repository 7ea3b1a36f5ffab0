"""The FLOPs of any model's measured step as formulas, fitted to the FLOPs its traces counted: flop_document().

The traces (analytic.exact.derivation.trace with count_flops) hold every op call of the measured step that counts
FLOPs, as measure() counts them (profiler.measuring.flops.OpFlops), with its phase. At the three size sets the
calls of forward, backward and recomputation must be the same ops in the same order, each call's FLOPs an integer
count (or one in eighths) times one monomial of degree <= FLOP_DEGREE (analytic.exact.monomials: a matmul is
2·B·T·H·Dh·F or 2·B·T·H²·Dh², attention 4·B·H·T²·Dh), or a sum of two, at every set; summed by monomial per phase
at L = 1, 2, 3 they must be once + L × per layer (fit.once_per_layer).

The optimizer's calls are fitted as a whole, since one foreach call runs over every parameter tensor (its FLOPs a
sum of the tensors' monomials): at L layers and a size set, O = r·P + c_L FLOPs, P the parameters' bytes (the
constant part's "parameters", once + L × per layer), r rational (the FLOPs per parameter over the element size:
the same at every L and set, from two sets, checked at the third) and c_L an integer the same at every set, once +
L × per layer (the per-tensor work: a step counter each).

The result: {"flops": {phase: [once, per layer]} for forward, backward, optimizer and recompute, "flops_matmul":
{phase: [once, per layer]} for forward and backward}, each {monomial: count} (an int, or 'p/q'); DerivationError
names the op, phase and FLOPs where the calls do not fit.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction

from analytic.exact import monomials
from analytic.exact.derivation.fit import DerivationError, once_per_layer
from analytic.exact.derivation.trace import FlopCall

FLOP_DEGREE = 6  # the highest total degree of a call's monomial: a D × D matmul B·T·H²·Dh², attention B·H·T²·Dh
FITTED = ("forward", "backward", "recompute")  # the phases fitted call by call
MATMUL_PHASES = ("forward", "backward")


def call_terms(calls: list[list[FlopCall]], sets: list[dict], grouped: bool, at: list[str]) -> list[tuple]:
    """[(phase, matmul, monomial, count)] of one trace's calls at every size set (`calls[i]` at `sets[i]`,
    described by `at[i]`): each call count × monomial at every set (or two such terms); calls counting 0 at every
    set are left out."""
    first = calls[0]
    for other, where in zip(calls[1:], at[1:]):
        for index, (one, two) in enumerate(zip(first, other)):
            if (one.phase, one.op) != (two.phase, two.op):
                raise DerivationError(f"the FLOP-counting ops change with the sizes: call {index + 1} is {one.op} in "
                                      f"{one.phase} at {at[0]} and {two.op} in {two.phase} at {where}")
        if len(first) != len(other):
            raise DerivationError(f"{len(first)} FLOP-counting calls at {at[0]}, {len(other)} at {where}")
    terms = []
    for group in zip(*calls):
        one, flops = group[0], tuple(call.flops for call in group)
        if not any(flops):
            continue
        found = single_term(flops, sets, grouped) or monomials.sums(flops, sets, grouped=grouped)
        if not found:
            raise DerivationError(f"{one.op} in {one.phase} counts {list(flops)} FLOPs at the {len(sets)} size sets: "
                                  f"no count × monomial of degree <= {FLOP_DEGREE} (a count in eighths), nor a sum "
                                  f"of two ({at[0]})")
        terms += [(one.phase, one.matmul, monomial, count) for monomial, count in found]
    return terms


def single_term(flops: tuple[int, ...], sets: list[dict], grouped: bool) -> list[tuple[str, Fraction]]:
    """[(monomial, count)] with count · monomial = flops[i] at sets[i] for every set, the lowest degree: an integer
    count, else one in eighths (RoPE's elementwise ops run over half a head, Dh/2, and the head size is a multiple of
    8); [] where none is."""
    for eighths in (1, 8):
        common = set.intersection(*(set(monomials.fits(eighths * count, sizes, FLOP_DEGREE, grouped))
                                    for count, sizes in zip(flops, sets)))
        if common:
            monomial, count = min(common, key=lambda term: (sum(monomials.powers(term[0])), term[0]))
            return [(monomial, Fraction(count, eighths))]
    return []


def optimizer_fit(flops: dict[int, list[int]], parameters: dict[int, list[int]],
                  parameter_terms: list[dict[str, int]]) -> list[dict[str, int]]:
    """[once, per layer] of the optimizer's FLOPs ({L: [at each set]}) as r × the parameters' bytes (`parameters`
    alike; `parameter_terms` their [once, per layer]) + c_L (module docstring)."""
    what = "the optimizer's FLOPs"
    layers = sorted(flops)
    first, second = flops[layers[0]][:2], parameters[layers[0]][:2]
    if second[0] == second[1]:
        raise DerivationError(f"{what}: the parameters' bytes are the same at two size sets")
    ratio = Fraction(first[0] - first[1], second[0] - second[1])
    constants = {}
    for count in layers:
        rest = {f - ratio * p for f, p in zip(flops[count], parameters[count])}
        if len(rest) != 1 or next(iter(rest)).denominator != 1:
            raise DerivationError(f"{what} are not {ratio} × the parameters' bytes + a constant at L = {count}")
        constants[count] = {"1": int(next(iter(rest)))}
    once, per_layer = once_per_layer(constants, what)
    result = []
    for constant, terms in ((once, parameter_terms[0]), (per_layer, parameter_terms[1])):
        scaled = Counter({monomial: ratio * count for monomial, count in terms.items()})
        scaled.update(constant)
        result.append({monomial: value for monomial, value in scaled.items() if value})
    return result


def flop_document(calls: dict[int, list[list[FlopCall]]], sets: list[dict], grouped: bool,
                  at: dict[int, list[str]], parameters: dict[int, list[int]],
                  parameter_terms: list[dict[str, int]]) -> dict:
    """{"flops": ..., "flops_matmul": ...} (module docstring) of the calls traced at L = 1, 2, 3 ({L: [calls at each
    set]}, `at` describing each trace), with the parameters' bytes ({L: [at each set]}) and their [once, per layer]
    terms for the optimizer."""
    totals = {phase: {} for phase in FITTED}
    matmul = {phase: {} for phase in MATMUL_PHASES}
    optimizer = {}
    for layers, traced in calls.items():
        for counts in (*totals.values(), *matmul.values()):
            counts[layers] = Counter()
        fitted = [[call for call in one if call.phase in FITTED] for one in traced]
        for phase, is_matmul, monomial, count in call_terms(fitted, sets, grouped, at[layers]):
            totals[phase][layers][monomial] += count
            if is_matmul and phase in matmul:
                matmul[phase][layers][monomial] += count
        optimizer[layers] = [sum(call.flops for call in one if call.phase == "optimizer") for one in traced]
    flops = {phase: once_per_layer(totals[phase], f"the {phase} FLOPs") for phase in FITTED}
    flops["optimizer"] = optimizer_fit(optimizer, parameters, parameter_terms)
    return {"flops": {phase: written(flops[phase]) for phase in ("forward", "backward", "optimizer", "recompute")},
            "flops_matmul": {phase: written(once_per_layer(matmul[phase], f"the {phase} matmul FLOPs"))
                             for phase in MATMUL_PHASES}}


def written(parts: list[dict]) -> list[dict]:
    """[once, per layer] with each count an int, or a string 'p/q' where it is not one (JSON)."""
    return [{monomial: int(count) if Fraction(count).denominator == 1 else str(Fraction(count))
             for monomial, count in part.items()} for part in parts]
