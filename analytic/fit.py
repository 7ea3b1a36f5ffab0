"""Any formula set's figure read back as a polynomial in the sizes, so that the textbook's and each seed's formula
can stand beside the exact model's derived one, coefficient by coefficient (the report's "the formula, derived").

A set is a black box `predict(spec)`. Its figure is fitted over the monomials L^a·B^b·T^c·D^d·H^h·V^v
(a, b, h, v ≤ 1; c, d ≤ 2) from predictions at random small sizes (least squares, columns scaled), the
coefficients are rounded to fractions with small denominators, and the result counts only if it reproduces the
set's predictions at other random sizes to 1e-9 relative. The setup is the seeds' one: d_ff = 4·D (so F is written
as 4·D), learned positions, float32, foreach AdamW, B ≥ 2 and H ≥ 2 (the exact model's general layout).
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy as sp

from analytic.exact.formula import B, D, F, G, H, L, T, V, evaluate, formulas, peak_moments, formula_key, size_values
from analytic.exact.model_programs import ModelPrograms
from analytic.figures import flatten
from model.config import ModelConfig
from model.setup import DTYPE_BYTES
from model.spec import StepSpec

SYMBOLS = (L, B, T, D, H, V)
POWERS = np.array(list(itertools.product(range(2), range(2), range(3), range(3), range(2), range(2))))
MONOMIALS = [sp.Mul(*(symbol ** int(power) for symbol, power in zip(SYMBOLS, powers))) for powers in POWERS]
TOLERANCE = 1e-9


def random_sizes(rng: np.random.Generator) -> dict:
    heads = int(rng.integers(2, 7))
    return {L: int(rng.integers(1, 10)), B: int(rng.integers(2, 10)), T: int(rng.integers(2, 12)),
            D: heads * int(rng.integers(1, 7)), H: heads, V: int(rng.integers(2, 30))}


def spec_at(sizes: dict, base: StepSpec | None = None) -> StepSpec:
    """The step spec at `sizes`: their model at their batch in the default setup, or `base`'s model and setup at
    them (d_ff 4·D, as many key/value heads as heads)."""
    if base is not None:
        return base.replace(vocab_size=sizes[V], context_length=sizes[T], num_layers=sizes[L], d_model=sizes[D],
                            num_heads=sizes[H], kv_heads=sizes[H], d_ff=4 * sizes[D], batch_size=sizes[B])
    model = ModelConfig(vocab_size=sizes[V], context_length=sizes[T], num_layers=sizes[L], d_model=sizes[D],
                        num_heads=sizes[H])
    return StepSpec(model, batch_size=sizes[B])


def _monomial_values(samples: list[dict]) -> np.ndarray:
    values = np.array([[sizes[symbol] for symbol in SYMBOLS] for sizes in samples], dtype=float)
    return np.prod(values[:, None, :] ** POWERS[None, :, :], axis=2)  # [samples, monomials]


def fit(figure: Callable[[dict], float], seed: int = 0) -> sp.Expr | None:
    """The polynomial that `figure(sizes)` is (sizes: {symbol: int}), or None if it is no polynomial of this form."""
    rng = np.random.default_rng(seed)
    samples = [random_sizes(rng) for _ in range(3 * len(MONOMIALS))]
    held_out = [random_sizes(rng) for _ in range(20)]
    design = _monomial_values(samples)
    scale = np.abs(design).max(axis=0)
    solution, *_ = np.linalg.lstsq(design / scale, np.array([float(figure(s)) for s in samples]), rcond=None)
    coefficients = [Fraction(float(c)).limit_denominator(1000) for c in solution / scale]
    expected = np.array([float(figure(s)) for s in held_out])
    got = _monomial_values(held_out) @ np.array([float(c) for c in coefficients])
    if np.any(np.abs(got - expected) > TOLERANCE * np.maximum(1.0, np.abs(expected))):
        return None
    return sp.Add(*(sp.Rational(c.numerator, c.denominator) * m for c, m in zip(coefficients, MONOMIALS) if c))


def set_figure(module, key: str, base: StepSpec | None = None) -> Callable[[dict], float]:
    """figure(sizes) of a formula set's prediction `key` (a dotted figure key), at `base`'s model and setup where
    given (spec_at)."""
    return lambda sizes: flatten(module.predict(spec_at(sizes, base)))[key]


def differences(theirs: sp.Expr, ours: sp.Expr) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
    """(monomial, their coefficient, ours) wherever they differ, largest degree first (a ⌈T/32⌉ in ours, the rows
    of the memory-efficient kernel's logsumexp, is a generator of its own)."""
    generators = (*SYMBOLS, *sorted((theirs + ours).atoms(sp.ceiling), key=str))
    theirs_by, ours_by = sp.Poly(theirs, *generators).as_dict(), sp.Poly(ours, *generators).as_dict()
    found = []
    for powers in sorted(set(theirs_by) | set(ours_by), key=lambda p: (-sum(p), p)):
        a, b = theirs_by.get(powers, 0), ours_by.get(powers, 0)
        if a != b:
            found.append((sp.Mul(*(g ** p for g, p in zip(generators, powers))), sp.sympify(a), sp.sympify(b)))
    return found


COMPARED = ("params", "saved_activations_bytes", "peak_bytes", "flops.forward", "flops.backward", "flops.optimizer")


def derived_formulas(spec: StepSpec) -> tuple[dict[str, sp.Expr], str]:
    """The exact model's formulas for the setup of the module docstring, F = 4·D; the peak (a max of moments) as
    the moment that holds it for the spec (named in the second value)."""
    setup = formula_key(spec, at_batch=False)
    ours = {key: sp.expand(value.subs(F, 4 * D)) for key, value in formulas(setup).items() if key in COMPARED}
    sizes = size_values(spec)
    where, moment = max(peak_moments(setup)["step"], key=lambda item: evaluate(item[1], sizes))
    ours["peak_bytes"] = sp.expand(moment.subs(F, 4 * D))
    return ours, where


def model_formulas(programs: ModelPrograms, spec: StepSpec) -> tuple[dict[str, sp.Expr], str]:
    """derived_formulas of a model's own code, from its derived exact model (analytic.exact.model_programs): params
    (the parameters' bytes over the element size), saved activations and the peak (the moment that holds it at the
    spec, named by its number), with F = 4·D and G = H; no FLOPs."""
    found = programs.formulas()
    element = DTYPE_BYTES[programs.document["dtype"]]

    def written(expression: sp.Expr) -> sp.Expr:
        return sp.expand(expression.subs({F: 4 * D, G: H}, simultaneous=True))

    peak = found["peak_bytes"]
    moments = list(peak.args) if isinstance(peak, sp.Max) else [peak]
    sizes = size_values(spec)
    number, moment = max(enumerate(moments, 1), key=lambda item: evaluate(item[1], sizes))
    return ({"params": written(found["fixed.parameters_bytes"] / element),
             "saved_activations_bytes": written(found["saved_activations_bytes"]), "peak_bytes": written(moment)},
            f"moment {number} of {len(moments)}")


def comparison(modules: dict, spec: StepSpec, derived: tuple[dict[str, sp.Expr], str] | None = None,
               base: StepSpec | None = None) -> tuple[dict[str, list], str]:
    """{term: [(set name, its formula or None, [(monomial, theirs, ours)...])]}, the derived formula first (as
    "exact"), and where the derived peak is for the spec; `modules` the formula sets by name (the exact one left
    out). `derived`: the derived formulas and where (model_formulas) in place of the built-in model's, over their
    terms; `base`: the model and setup the sets predict (spec_at)."""
    ours, where = derived or derived_formulas(spec)
    table: dict[str, list] = {}
    for key in (COMPARED if derived is None else ours):
        rows = [("exact", ours[key], [])]
        for name, module in modules.items():
            if name == "exact":
                continue
            theirs = fit(set_figure(module, key, base))
            rows.append((name, theirs, None if theirs is None else differences(theirs, ours[key])))
        table[key] = rows
    return table, where
