"""The exact model of any model's step (a user's code, a Hugging Face model): programs over an alphabet of
monomials, derived from traces (analytic.exact.derivation.any_model), evaluated and written as formulas here.

A document (plain data, JSON):
    symbols    the monomials the programs name (analytic.exact.monomials: `B*T*H*Dh`, `B*H*T^2`, `1`)
    constant   {category: [once, per layer]}: what is live as the warm-up step starts (parameters, buffers, inputs, and
               any storage the model's construction left behind), each {monomial: count}
    windows    [[phase, step, segments]] in step order: the warm-up step's forward, backward and optimizer, what
               happens between the two steps ("between"), and the measured step's; segments as in
               analytic.exact.derivation.fit.segment (program, runs once / L times / L − 1 times), their tokens
               `+A:4*B*T*H*Dh` (analytic.exact.programs)
    domain     where the programs hold (B >= 2, H >= 2, T >= 2, the key/value heads as traced)
    saved_by_op  {op: [once, per layer]}: what autograd saved in the measured step (as measure()'s
               saved_activations_by_op), by the op that allocated each storage ('aten.mul'), {monomial: count} each
    flops      {phase: [once, per layer]}: the measured step's FLOPs in forward, backward, optimizer and recompute
               (as measure() counts them), {monomial: count} each, a count an int or 'p/q'
               (analytic.exact.derivation.flop_fit); flops_matmul the same for the matmul FLOPs of forward and
               backward; flops_error instead of both where the FLOPs did not fit that form
    verified   the held-out sizes the numeric model was compared with a measurement at, and the result (the FLOP
               formulas' too: at how many sizes, flops_at, and flop_differences)
Its figures are measure()'s: each phase's peak, start and end bytes and categories at the peak of the measured step
(and of the warm-up step under "warmup"), the step's peak, and the saved activations at the end of forward; they
are computed by analytic.exact.memory's walk over the programs, with the monomials' values for the symbols' and the
constant part from `constant`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import sympy as sp

from analytic.exact import monomials
from analytic.exact.memory import compile_walk, step_peak, walk_windows
from analytic.exact.programs import TAPE_CATEGORIES, compile_program, runs
from analytic.figures import combine_windows
from model.config import BUILTIN
from model.setup import DTYPE_BYTES
from model.spec import StepSpec
from model.vocabulary import CATEGORIES, PHASES

CONSTANT = ("parameters", "buffers", "inputs")
MEASURED, WARMUP = "measured", "warmup"
SAVED = TAPE_CATEGORIES.index("saved_activations")
# The derivation's own variables: L and analytic.exact.monomials.VARIABLES, and their least values in the domain
INTERNAL = sp.symbols("L B T H Dh F V T32 G", positive=True, integer=True)
LOWER_BOUNDS = {"L": 1, "B": 2, "T": 2, "H": 2, "Dh": 8, "F": 1, "V": 1, "T32": 32, "G": 2}


@dataclass(frozen=True)
class MonomialSizes:
    """What analytic.exact.memory.walk_windows reads of a Sizes, for monomial programs: B (its shape), L, the
    symbols' values, and the constant part's bytes."""

    B: np.ndarray
    L: np.ndarray
    values: np.ndarray  # [symbols, elements]
    parameter_bytes: np.ndarray
    buffer_bytes: np.ndarray
    input_bytes: np.ndarray

    def symbol_matrix(self) -> np.ndarray:
        return self.values


class ModelPrograms:
    """A derived document (module docstring), evaluated at sizes ({B, T, H, Dh, F, V, L}: numbers or arrays)."""

    def __init__(self, document: dict):
        self.document = document
        self.symbols = tuple(document["symbols"])

    def compile(self, program: str):
        return compile_program(program, TAPE_CATEGORIES, self.symbols)

    @cached_property
    def walk(self):
        windows = [(phase, None, [(program, repeated) for program, repeated in segments])
                   for phase, _, segments in self.document["windows"]]
        start = np.zeros((2, len(TAPE_CATEGORIES), len(self.symbols)), dtype=np.int64)
        for row, category in enumerate(TAPE_CATEGORIES):  # what construction leaves on the tape
            start[:, row] = self.constant_coefficients(category)
        return compile_walk(windows, start, partial(compile_program, categories=TAPE_CATEGORIES,
                                                    symbols=self.symbols))

    def _vector(self, terms: dict) -> np.ndarray:
        vector = np.zeros(len(self.symbols), dtype=np.int64)
        for symbol, count in terms.items():
            vector[self.symbols.index(symbol)] += count
        return vector

    def constant_coefficients(self, category: str) -> np.ndarray:
        """[2, symbols]: (once, per layer) counts of a constant category."""
        once, per_layer = self.document["constant"].get(category, ({}, {}))
        return np.stack([self._vector(once), self._vector(per_layer)])

    def sizes(self, sizes: dict) -> MonomialSizes:
        names = (*monomials.VARIABLES, "L")
        arrays = np.broadcast_arrays(*(np.asarray(monomials.padded(sizes)[name], dtype=np.int64) for name in names))
        shape = arrays[0].shape
        at = dict(zip(names, arrays))
        values = monomials.matrix(self.symbols, at)
        layers = at["L"].reshape(-1)
        constant = [self._affine(self.constant_coefficients(name), values, layers).reshape(shape) for name in CONSTANT]
        return MonomialSizes(at["B"], at["L"], values, *constant)

    @staticmethod
    def _affine(coefficients: np.ndarray, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
        """(once + L·per layer) · values: [2, S] over [S, N] -> [N]."""
        const, per_layer = coefficients @ values
        return const + per_layer * layers

    def figures(self, sizes: dict) -> dict:
        """measure()'s figures at `sizes`: peak_bytes, peak_phase, phases, categories_at_peak, warmup (its phases),
        saved_activations_bytes; numpy arrays of the sizes' shape."""
        at = self.sizes(sizes)
        windows = walk_windows(self.walk, at)
        steps = [step for _, step, _ in self.document["windows"]]
        measured = combine_windows([w for w, step in zip(windows, steps) if step == MEASURED])
        warmup = combine_windows([w for w, step in zip(windows, steps) if step == WARMUP])
        result = {**step_peak(measured["phases"], CATEGORIES), **measured,
                  "warmup": {**step_peak(warmup["phases"], CATEGORIES), **warmup}}
        saved = self.saved_coefficients()
        result["saved_activations_bytes"] = self._affine(saved, at.values, at.L.reshape(-1)).reshape(np.shape(at.B))
        return result

    def saved_coefficients(self) -> np.ndarray:
        """[2, symbols]: (once, per layer) the bytes autograd keeps at the end of the measured step's forward (the
        tape's saved activations as its backward starts)."""
        live = self.constant_coefficients("saved_activations")
        for phase, step, segments in self.document["windows"]:
            if (phase, step) == ("backward", MEASURED):
                return live
            for program, repeated in segments:
                net = self.compile(program)[1][SAVED]
                once = runs(repeated, 0)
                live = live + np.stack([once * net, (runs(repeated, 1) - once) * net])
        raise ValueError("the programs have no measured backward")

    # --- formulas -----------------------------------------------------------------------------------------------
    def polynomial(self, coefficients: np.ndarray) -> sp.Expr:
        """(once + L·per layer) · symbols as a polynomial in L and VARIABLES (INTERNAL): [2, symbols] coefficients."""
        layers, *variables = INTERNAL
        return sp.expand(sp.Add(*(int(c) * (layers if row else 1) * sp.Mul(*(v ** k for v, k in zip(
            variables, monomials.powers(symbol)))) for row in (0, 1) for c, symbol in zip(coefficients[row],
                                                                                       self.symbols) if c)))

    def expression(self, polynomial: sp.Expr) -> sp.Expr:
        """A polynomial in INTERNAL as an expression in the formula's sizes L, B, T, D, H, F, V and G (Dh = D/H,
        T32 = 32·⌈T/32⌉), with B and H 1 in the layout class where they are (the document's "ones")."""
        from analytic.exact.formula import B, D, F, G, H, L, T, V

        padded = monomials.LSE_ROWS * sp.ceiling(T / monomials.LSE_ROWS)
        ones = {symbol: 1 for symbol in (B, H) if str(symbol) in self.document.get("ones", ())}
        return sp.expand(polynomial.subs(dict(zip(INTERNAL, (L, B, T, H, D / H, F, V, padded, G))),
                                         simultaneous=True).subs(ones))

    def formulas(self) -> dict[str, sp.Expr]:
        """Every figure as an expression in L, B, T, D, H, F, V: the constant part, the saved activations, each
        phase's peak of the measured step and the step's peak, a max of its moments (peak_moments), and where B
        >= 2 and every moment is linear in B the largest batch in a budget of M bytes, min over the step's moments
        (α + β·B each) of ⌊(M − α)/β⌋ (analytic.exact.formula.max_batch_formula)."""
        constant = {name: self.polynomial(self.constant_coefficients(name)) for name in CONSTANT}
        saved = self.saved_coefficients()
        result = {f"fixed.{name}_bytes": self.expression(value) for name, value in constant.items()}
        one_layer = np.stack([saved[1], 0 * saved[1]])  # what one layer keeps, without the factor L
        result.update({"saved_activations_per_layer_bytes": self.expression(self.polynomial(one_layer)),
                       "saved_activations_outside_layers_bytes": self.expression(self.polynomial(saved * [[1], [0]])),
                       "saved_activations_bytes": self.expression(self.polynomial(saved))})
        peaks = self.peak_moments
        for phase, moments in peaks.items():
            result["peak_bytes" if phase == "step" else f"phases.{phase}.peak_bytes"] = _max([e for _, e in moments])
        from analytic.exact.formula import B, max_batch_formula

        if "B" not in self.document.get("ones", ()) and all(sp.diff(e, B, 2) == 0 for _, e in peaks["step"]):
            result["max_batch"] = max_batch_formula([e for _, e in peaks["step"]])  # (none where B = 1: its class)
        return result

    def flop_formulas(self) -> dict[str, sp.Expr]:
        """The measured step's FLOPs as expressions in L, B, T, D, H, F, V: flops.<phase> for forward, backward,
        optimizer and recompute, flops_matmul.<phase> for forward and backward, each once + L × per layer (the
        document's "flops" and "flops_matmul"); {} where the document has none."""
        layers, *variables = INTERNAL

        def monomial(symbol: str) -> sp.Expr:
            return sp.Mul(*(v ** k for v, k in zip(variables, monomials.powers(symbol))))

        return {f"{field}.{phase}": self.expression(sp.Add(
                    *(sp.Rational(count) * monomial(symbol) for symbol, count in once.items()),
                    *(sp.Rational(count) * layers * monomial(symbol) for symbol, count in per_layer.items())))
                for field in ("flops", "flops_matmul")
                for phase, (once, per_layer) in self.document.get(field, {}).items()}

    @cached_property
    def peak_moments(self) -> dict[str, list[tuple[str, sp.Expr]]]:
        """{phase: the moments its peak in the measured step is the max of} for forward, backward, optimizer and
        the step ("step"), each (its phase, an expression in L, B, T, D, H, F, V): the moments the numeric model keeps
        (analytic.exact.memory.candidates), less those another one is at least as high as everywhere in the
        domain (prune), in step order."""
        walk, base = self.walk, sum(self.constant_coefficients(name) for name in CONSTANT)
        steps = [step for _, step, _ in self.document["windows"]]
        vectors, least, phases = [], [], []
        for number, ((name, _), step) in enumerate(zip(walk.windows, steps)):
            if step == MEASURED and name in PHASES:
                begin, end = walk.bounds[number], walk.bounds[number + 1]
                block = walk.candidates[:, begin:end].sum(axis=2)  # [2, moments, symbols]
                vectors += [base + block[:, k] for k in range(block.shape[1])]
                least += [int(layers) for layers in walk.least_layers[begin:end]]
                phases += [name] * block.shape[1]
        kept = {phase: prune(vectors, least, self.symbols, [k for k, name in enumerate(phases) if name == phase])
                for phase in PHASES}
        kept["step"] = prune(vectors, least, self.symbols, sorted(k for found in kept.values() for k in found))
        return {phase: [(phases[k], self.expression(self.polynomial(vectors[k]))) for k in found]
                for phase, found in kept.items()}

    def saved_by_op(self) -> dict[str, tuple[sp.Expr, sp.Expr]]:
        """{op: (bytes it keeps outside the layers, bytes it keeps per layer)} as expressions in L, B, T, D, H, F,
        V (the per-layer one without the factor L)."""
        found = {}
        for op, (once, per_layer) in self.document["saved_by_op"].items():
            found[op] = tuple(self.expression(self.polynomial(np.stack([self._vector(terms), 0 * self._vector({})])))
                              for terms in (once, per_layer))
        return found

    def step_figures(self, sizes: dict) -> dict:
        """The exact set's figures of the step at `sizes` (figures, without the warm-up's step peak), and params:
        the parameters' bytes over the element size of the step's dtype."""
        found = self.figures(sizes)
        at = self.sizes(sizes)
        return {"params": at.parameter_bytes // DTYPE_BYTES[self.document["dtype"]], **found}

    @property
    def late(self) -> bool:
        """Whether some moment exists from L = 2 on only (a segment run L − 1 times): the formulas then hold for
        L >= 2 (the numeric model for every L)."""
        return self.walk.late


def prune(vectors: list[np.ndarray], least: list[int], symbols: tuple[str, ...], among: list[int]) -> list[int]:
    """The moments of `among` (indices into `vectors`, each [2, symbols]: once + L·per layer, existing from L =
    least[k] on) that no other of them is at least as high as everywhere in the domain, in order; the first of
    equal ones is kept.

    Moment i is at least moment j where j exists if least[i] <= least[j] and every coefficient of their difference
    is >= 0 once each size is shifted to its lower bound (LOWER_BOUNDS, L to least[j]: B = 2 + B′, ...): a
    polynomial with non-negative coefficients in non-negative variables is non-negative. The shift of
    L^l·∏ v^k is ∏ Σ_j C(k, j)·b^(k−j)·v^j (the binomial theorem), so the comparison is integer arithmetic."""
    first: dict = {}
    for k in among:
        first.setdefault((vectors[k].tobytes(), least[k]), k)
    unique = list(first.values())
    if len(unique) < 2:
        return unique
    names = [monomials.powers(symbol) for symbol in symbols]
    basis = [(row, *powers) for row in (0, 1) for powers in names]  # (power of L, powers of VARIABLES)
    stacked = np.array([vectors[k].reshape(-1) for k in unique], dtype=np.int64)
    layers = np.array([least[k] for k in unique])
    at_least = np.zeros((len(unique), len(unique)), dtype=bool)  # [i, j]: i is at least j wherever j exists
    for bound in sorted(set(layers)):
        bounds = (bound, *(LOWER_BOUNDS[str(v)] for v in INTERNAL[1:]))
        terms = [_shifted(powers, bounds) for powers in basis]
        columns = sorted({exponent for found in terms for exponent in found})
        table = np.array([[found.get(exponent, 0) for exponent in columns] for found in terms], dtype=np.int64)
        values = stacked @ table
        later = layers == bound
        difference = values[:, None, :] - values[None, later, :]
        at_least[:, later] = np.all(difference >= 0, axis=2) & (layers[:, None] <= bound)
    return [unique[j] for j in range(len(unique))
            if not any(i != j and at_least[i, j] and (not at_least[j, i] or i < j) for i in range(len(unique)))]


def _shifted(powers: tuple[int, ...], bounds: tuple[int, ...]) -> dict[tuple[int, ...], int]:
    """{exponents: coefficient} of ∏ (v + b)^k over the powers k and bounds b."""
    terms = {(): 1}
    for power, bound in zip(powers, bounds):
        terms = {exponents + (j,): count * math.comb(power, j) * bound ** (power - j)
                 for exponents, count in terms.items() for j in range(power + 1)}
    return terms


def _max(moments: list) -> sp.Expr:
    return moments[0] if len(moments) == 1 else sp.Max(*moments, evaluate=False)


def formula_document(document: dict, layouts: tuple[dict, ...] = ()) -> dict:
    """`formula --model X --json`: each figure as a Python expression in L, B, T, D, H, F, V and the budget M (+ - *
    // ** and max()), nested as in `measure --json`, with what the programs were derived from and where they were
    verified; the documents of the degenerate layout classes (B = 1, H = 1), `layouts`, under "layouts" by domain
    (their peaks and saved activations), as the built-in model's formula document has them."""
    from analytic.exact.formula import python_expression
    from analytic.figures import unflatten

    programs = ModelPrograms(document)
    verified = document.get("verified", {})
    return {"model": document["source"], "optimizer": document["optimizer"], "dtype": document["dtype"],
            "derived_on_torch": document["torch_version"], "domain": domain(document),
            "verified": {"held_out_sizes": verified.get("sizes", []), "differences": verified.get("differences", []),
                         "flops_at": verified.get("flops_at", 0),
                         "flop_differences": verified.get("flop_differences", [])},
            "symbols": {"L": "layers", "B": "batch size", "T": "context length", "D": "d_model", "H": "heads",
                        "F": "d_ff", "V": "vocabulary", "G": "key/value heads",
                        "M": "memory budget in bytes (max_batch)"},
            **unflatten({key: python_expression(value) for key, value in programs.formulas().items()}),
            **(unflatten({key: python_expression(value) for key, value in programs.flop_formulas().items()})
               if unverified_flops(document) is None else {"flops_not_shown": unverified_flops(document)}),
            "layouts": {domain(layout): unflatten({key: python_expression(value)
                                                   for key, value in ModelPrograms(layout).formulas().items()
                                                   if "peak_bytes" in key or key.startswith("saved_activations")})
                        for layout in layouts}}


def unverified_flops(document: dict) -> str | None:
    """Why the document's FLOP formulas are not shown (they did not fit the form, were not compared with a
    measurement, or differ from one at a held-out size), or None: they were exact at every held-out size."""
    verified = document.get("verified", {})
    if "flops" not in document:
        return document.get("flops_error", "not derived")
    if not verified.get("flops_at"):
        return "not verified at held-out sizes"
    if verified.get("flop_differences"):
        return f"not exact at held-out sizes ({verified['flop_differences'][0]})"
    return None


def domain(document: dict) -> str:
    """Where the formulas hold: the traced domain, and L >= 2 where a moment exists from L = 2 on only."""
    return document["domain"] + (", L >= 2" if ModelPrograms(document).late else "")


def difference(first: ModelPrograms, second: ModelPrograms) -> dict:
    """What `first` keeps beyond `second` (negative: less), as expressions: parameters, and saved activations per
    layer and outside the layers, in all and by op (the ops where they differ, largest first at unit sizes)."""
    mine, theirs = first.formulas(), second.formulas()
    result = {"parameters": sp.expand(mine["fixed.parameters_bytes"] - theirs["fixed.parameters_bytes"])}
    ops_mine, ops_theirs = first.saved_by_op(), second.saved_by_op()
    zero = (sp.Integer(0), sp.Integer(0))
    for where, side, key in (("per_layer", 1, "saved_activations_per_layer_bytes"),
                             ("outside_layers", 0, "saved_activations_outside_layers_bytes")):
        total = sp.expand(mine[key] - theirs[key])
        by_op = {op: sp.expand(ops_mine.get(op, zero)[side] - ops_theirs.get(op, zero)[side])
                 for op in sorted(set(ops_mine) | set(ops_theirs))}
        by_op = {op: value for op, value in by_op.items() if value != 0}
        at_one = {op: abs(value.subs({symbol: 2 for symbol in value.free_symbols})) for op, value in by_op.items()}
        result[where] = {"total": total, "by_op": dict(sorted(by_op.items(), key=lambda item: -at_one[item[0]]))}
    return result


def own_code(spec: StepSpec) -> bool:
    """Whether the spec's step runs a model's or an optimizer's own code (a source other than the built-in model,
    or an optimizer class): its exact model is derived from traces of that code, not the built-in programs."""
    return spec.model.source != BUILTIN or bool(spec.setup.optimizer_class)


def program_sizes(spec: StepSpec) -> dict:
    """The derivation's sizes (B, T, H, Dh, F, V, L, G) of a step spec (B the batch of one micro-batch)."""
    config = spec.model
    return {"B": spec.micro_batch_size, "T": config.context_length, "H": config.num_heads,
            "Dh": config.d_model // config.num_heads, "F": config.d_ff, "V": config.vocab_size,
            "L": config.num_layers, "G": config.kv_heads}


def outside_domain(spec: StepSpec) -> str | None:
    """Why the spec's sizes are outside the domain of a model's derived programs (analytic.exact.derivation.
    any_model.DOMAIN; B = 1, H = 1 and multi-query attention are layout classes of their own, layout_ones), or
    None."""
    sizes = program_sizes(spec)
    if sizes["T"] < 2:
        return "a context length of 1 (T >= 2 is derived)"
    if spec.model.d_model % sizes["H"] or sizes["Dh"] % 8:
        return f"a head size d_model/heads of {spec.model.d_model / sizes['H']:g} (a multiple of 8 is derived)"
    return None


def layout_ones(spec: StepSpec) -> tuple[str, ...]:
    """The sizes that are 1 at the spec, "B" (a batch of one micro-batch) and "H" (one head): its layout class,
    whose programs are traced with those sizes at 1 (analytic.exact.derivation.any_model.derive_model), and "G"
    for multi-query attention (one key/value head of H >= 2; layout_of)."""
    sizes = program_sizes(spec)
    return layout_of(spec, tuple(name for name in ("B", "H") if sizes[name] == 1))


def layout_of(spec: StepSpec, ones: tuple[str, ...]) -> tuple[str, ...]:
    """`ones`, with "G" where the spec has multi-query attention and H is not 1: one key/value head is a layout
    class of its own (its key and value widths are a head's, Dh, where other layouts' are G·Dh)."""
    multi_query = spec.model.kv_heads == 1 < spec.model.num_heads and "H" not in ones
    return (*ones, "G") if multi_query and "G" not in ones else ones


def own_max_batch_size(programs: ModelPrograms, spec: StepSpec, budget_bytes: int) -> int | None:
    """The largest batch B >= 2 whose step's peak (the numeric model of B >= 2, `programs`: increasing in B) fits
    `budget_bytes`: doubled from 2 until it does not fit, then bisected; None where not even B = 2 fits (B = 1 is
    another layout class). The spec's batch_size is not read."""
    sizes = program_sizes(spec)

    def fits(batch: int) -> bool:
        return int(programs.figures({**sizes, "B": batch})["peak_bytes"]) <= budget_bytes

    if not fits(2):
        return None
    low, high = 2, 4
    while fits(high):
        low, high = high, 2 * high
        if high > 2**62:
            return low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low
