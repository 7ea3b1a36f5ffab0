"""The exact model as the formula people write: every figure of a setup as an expression over the sizes L, B, T,
D, H, F, V (bytes per element as numbers), collected with sympy.

It is built from what the numeric model evaluates (analytic.exact.memory, .flops): the derived allocation
programs (analytic/exact/derived.json.gz), the constant part and the AdamW closed forms, with sympy symbols in place of
numbers. A phase's peak is the highest of its moments; the moments are linear in B, so
    peak = max_k (α_k + β_k·B),
and max batch = min_k ⌊(M − α_k) / β_k⌋ for a budget of M bytes. Moments that another moment exceeds at every
size of the layout class (checked coefficient by coefficient after shifting each size to its lower bound, e.g.
T = 2 + T′) are dropped, so the max lists only the moments that can hold the peak.

`formulas(setup)` returns {figure key: sympy expression} under the field names of `measure --json`, plus the
keys of the fixed part and the per-layer split; `python_expression` prints one as Python using only
+ - * // ** and max().
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import sympy as sp

from analytic.exact.source import Programs, installed
from analytic.exact.flops import flop_figures
from analytic.exact.memory import STATE, segments_net, step_walk
from analytic.exact.programs import EVERY_BLOCK_BUT_THE_LAST, TAPE_CATEGORIES, compile_program, short_token
from analytic.sizes import DOMAINS, LSE_ROWS, SYMBOLS, LayoutClass, Sizes, head_layout, optimizer_key
from analytic.figures import flatten, unflatten
from analytic.params import parameter_breakdown, parameter_tensor_count
from model.setup import DTYPE_BYTES
from model.spec import StepSpec
from model.vocabulary import PHASES

L, B, T, D, H, F, V, G = SIZES = sp.symbols("L B T D H F V G", positive=True, integer=True)
M = sp.Symbol("M", positive=True, integer=True)  # a memory budget in bytes
GRADIENTS = TAPE_CATEGORIES.index("gradients")
FLOP_KEYS = ("flops.forward", "flops.backward", "flops.optimizer", "flops.recompute", "flops_matmul.forward",
             "flops_matmul.backward")
LAYOUTS = DOMAINS  # (B == 1, H == 1, G < H, G == 1) -> its domain


@dataclass(frozen=True)
class FormulaKey:
    """What a set of formulas holds for: a step spec's layout class (at a batch, or the general one) and AdamW
    implementation (formula_key)."""

    positional: str = "learned"
    optimizer: str = "foreach"
    dtype: str = "float32"
    batch_one: bool = False  # the layout class: B == 1
    head_one: bool = False  # H == 1
    grouped: bool = False  # G < H (llama's grouped- or multi-query attention)
    kv_one: bool = False  # G == 1 (H == 1, or multi-query attention)
    checkpointing: str = "none"
    micro_batches: int = 1  # B is the batch of one micro-batch
    zero_grad: str = "none"
    attention: str = "explicit"
    autocast: str = "none"
    arch: str = "reference"
    dropout: bool = False  # gpt2's dropouts run (config.dropout > 0)

    def __post_init__(self):
        if self.head_one:
            object.__setattr__(self, "kv_one", True)

    @property
    def layout(self) -> tuple[bool, bool, bool, bool]:
        return self.batch_one, self.head_one, self.grouped, self.kv_one

    def layout_class(self) -> LayoutClass:
        return LayoutClass.of(self.arch, self.positional, self.attention, self.dtype, self.autocast,
                              self.checkpointing, self.dropout, self.layout)

    def optimizer_key(self) -> tuple:
        return optimizer_key(self.arch, self.positional, self.grouped, self.optimizer)

    def domain(self, programs: Programs | None = None) -> str:
        """The layout class's domain; L >= 2 where a segment runs L − 1 times (its moments, which the formula's
        max lists, exist from L = 2 on; the numeric model, analytic.exact.memory, holds for L = 1 too). Programs:
        those of the installed torch by default (analytic.exact.source.installed)."""
        derived = (programs or installed()).layout_class(self.layout_class())
        but_last = any(repeated == EVERY_BLOCK_BUT_THE_LAST for window in derived.values() if isinstance(window, list)
                       for _, repeated in window)
        return LAYOUTS[self.layout] + (", L >= 2" if but_last else "")

    def lower_bounds(self) -> dict:
        """The least value of each size symbol in the layout class (B, H and G are numbers when they are 1)."""
        return {L: 1, B: 2, T: 2, D: 1, H: 2, F: 1, V: 1, G: 2}


def formula_key(spec: StepSpec, at_batch: bool = True) -> FormulaKey:
    """The key of a step spec: in the layout class of its batch, or (`at_batch` False) in the general one."""
    config, setup = spec.model, spec.setup
    heads = head_layout(config.num_heads, config.kv_heads)  # without a batch, the general layout (H >= 2)
    head_one, grouped, kv_one = heads if at_batch or config.num_heads > 1 else (False, False, False)
    batch_one = at_batch and spec.micro_batch_size == 1
    return FormulaKey(config.positional, setup.optimizer, setup.dtype, batch_one, head_one, grouped, kv_one,
                      setup.checkpointing, setup.micro_batches, setup.zero_grad, setup.attention, setup.autocast,
                      config.arch, bool(config.dropout))


def size_values(spec: StepSpec, budget_bytes: int = 0) -> dict[str, int]:
    """The values of the formulas' size symbols (and of the budget M) for a step spec (B is the batch of one
    micro-batch)."""
    config = spec.model
    return {"L": config.num_layers, "B": spec.micro_batch_size, "T": config.context_length,
            "D": config.d_model, "H": config.num_heads, "F": config.d_ff, "V": config.vocab_size,
            "G": config.kv_heads, "M": budget_bytes}


def symbolic_sizes(setup: FormulaKey) -> Sizes:
    """analytic.sizes.Sizes with sympy symbols (B, H or G as 1 in those layout classes; G = H without grouped-query
    attention)."""
    batch = sp.Integer(1) if setup.batch_one else B
    heads = sp.Integer(1) if setup.head_one else H
    kv_heads = sp.Integer(1) if setup.kv_one else G if setup.grouped else heads
    shape = SimpleNamespace(vocab_size=V, context_length=T, num_layers=L, d_model=D, d_ff=F, arch=setup.arch,
                            positional=setup.positional, kv_width=kv_heads * D / heads)
    learned, rope = int(setup.positional == "learned"), int(setup.positional == "rope")
    return Sizes(B=batch, T=T, D=D, H=heads, F=F, V=V, L=L, e=sp.Integer(DTYPE_BYTES[setup.dtype]), G=kv_heads,
                 params=sum(parameter_breakdown(shape).values()), tensors=parameter_tensor_count(shape),
                 learned=learned, rope=rope, checkpointing=setup.checkpointing, micro_batches=setup.micro_batches,
                 zero_grad=setup.zero_grad, attention=setup.attention, dtype=setup.dtype, autocast=setup.autocast,
                 arch=setup.arch, dropout=setup.dropout)


def symbol_values(sizes: Sizes) -> list:
    """The SYMBOLS' bytes as expressions: floors dropped where the division is exact (a·e/2 is an integer), kept
    as a ceiling where it is not (the efficient kernel's logsumexp rows, ⌈T/32⌉·32)."""
    values = [_exact(sizes.symbols()[name]) for name in SYMBOLS]
    values[SYMBOLS.index("h")] = _exact(sizes.B * T * D * sizes.e / 2)
    values[SYMBOLS.index("le")] = sizes.B * sizes.H * LSE_ROWS * 4 * sp.ceiling(T / LSE_ROWS)
    return values


def _exact(expression):
    """Integer division written as floor (a // 2, D // H) is exact here (a·e is even, H divides D)."""
    return sp.expand(sp.sympify(expression).replace(sp.floor, lambda argument: argument))


class Moments:
    """Moments of a step as integer vectors over a basis of expressions: [start (parameters, buffers and inputs),
    the program symbols' bytes, L × each of them]. A moment of the r-th run of a repeated segment is the first
    run's plus r·(the segment's net); r = 0 and r = L − 1 bound the others (the total is linear in r)."""

    def __init__(self, start: sp.Expr, values: list):
        self.values = values
        self.basis = [start, *values, *(L * v for v in values)]
        self.size = len(values)

    def vector(self, symbols=None, l_symbols=None, start=0) -> np.ndarray:
        out = np.zeros(len(self.basis), dtype=np.int64)
        out[0] = start
        if symbols is not None:
            out[1:1 + self.size] = symbols
        if l_symbols is not None:
            out[1 + self.size:] = l_symbols
        return out

    def phase(self, name: str, live: np.ndarray, segments, categories: np.ndarray,
              micro_batch: int | None = None) -> tuple[list, np.ndarray]:
        """Moments of a derived phase (segments run once or L times) from `live`, as (vector, where) pairs; the
        live vector at its end. categories[tape category, 2·S] accumulates each tape category's net. With
        micro_batch, the phase of micro-batch 1 or of every later one (2 stands for them all)."""
        if micro_batch is not None:
            name = f"{name} of micro-batch {'1' if micro_batch == 1 else '2..k'}"
        moments = [(live, f"{name} starts")]
        first_repeated = next((i for i, (_, repeated) in enumerate(segments) if repeated), len(segments))
        for position, (program, repeated) in enumerate(segments):
            steps, net = compile_program(program)
            allocations = [short_token(token) for token in program.split() if token.startswith("+")]
            total = net.sum(axis=0)
            part = "before the blocks" if position < first_repeated else "after the blocks"
            for index, rise in enumerate(steps.sum(axis=1)):
                where = f"after allocation {index + 1} of {len(allocations)} ({allocations[index]})"
                if repeated:  # backward runs the blocks in reverse: its first run is block L
                    but_last = repeated == EVERY_BLOCK_BUT_THE_LAST  # runs L − 1 times (present from L = 2 on)
                    first, last = ("block L", "block 1") if name == "backward" else ("block 1", "block L")
                    last = "block L-1" if but_last and name != "backward" else last
                    moments.append((live + self.vector(rise), f"{name}, {first}, {where}"))
                    moments.append((live + self.vector(rise - (2 if but_last else 1) * total, total),
                                    f"{name}, {last}, {where}"))
                else:
                    moments.append((live + self.vector(rise), f"{name}, {part}, {where}"))
            once = -1 if repeated == EVERY_BLOCK_BUT_THE_LAST else 0
            live = live + (self.vector(once * total, total) if repeated else self.vector(total))
            for index, row in enumerate(net):
                categories[index] += np.concatenate([once * row, row]) if repeated else np.concatenate([row, 0 * row])
        return moments, live

    def expression(self, vector: np.ndarray) -> sp.Expr:
        return sp.expand(sp.Add(*(int(c) * b for c, b in zip(vector, self.basis) if c)))

    def shifted_table(self, bounds: dict) -> np.ndarray:
        """[basis, columns]: each basis expression's coefficients once every size is shifted to its lower bound
        (T = 2 + T′, ...), over the monomials of the shifted sizes; an expression that is no polynomial (the RoPE
        tables' T·(D/H)·e in the start) is a non-negative unknown of its own."""
        shifted = [_polynomial(b.subs({s: s + lb for s, lb in bounds.items()}, simultaneous=True))
                   for b in self.basis]
        monomials = sorted({m for poly in shifted if poly is not None for m in poly.as_dict()})
        table = np.zeros((len(self.basis), len(monomials) + len(self.basis)))
        for row, poly in enumerate(shifted):
            if poly is None:
                table[row, len(monomials) + row] = 1
                continue
            for monomial, coefficient in poly.as_dict().items():
                table[row, monomials.index(monomial)] = float(coefficient)
        return table

    def prune(self, moments: list, table: np.ndarray) -> list:
        """The (vector, where) moments not exceeded everywhere by another (module docstring), each once; `table`
        from shifted_table."""
        unique = list({tuple(vector): (vector, where) for vector, where in reversed(moments)}.values())[::-1]
        values = np.array([vector for vector, _ in unique]) @ table
        at_least = np.all(values[:, None, :] - values[None, :, :] >= 0, axis=2)  # [i, j]: i >= j everywhere
        keep = [j for j in range(len(unique))
                if not any(i != j and at_least[i, j] and (not at_least[j, i] or i < j) for i in range(len(unique)))]
        return [unique[j] for j in keep]


def _polynomial(expression: sp.Expr) -> sp.Poly | None:
    try:
        return sp.Poly(sp.expand(expression), *SIZES)
    except sp.PolynomialError:
        return None


def formulas(setup: FormulaKey = FormulaKey(), programs: Programs | None = None) -> dict[str, sp.Expr]:
    """Every figure of the setup as a sympy expression (keys as in `measure --json`, plus fixed.* and the split of
    saved activations per layer and outside the layers), from `programs` (the installed torch's by default)."""
    return _build(setup, programs or installed())[0]


def peak_moments(setup: FormulaKey = FormulaKey(),
                 programs: Programs | None = None) -> dict[str, list[tuple[str, sp.Expr]]]:
    """The moments each phase's peak (and the step's, "step") is the max of: (where in the step, bytes)."""
    return _build(setup, programs or installed())[1]


@lru_cache(maxsize=None)
def _build(setup: FormulaKey, programs: Programs) -> tuple[dict[str, sp.Expr], dict[str, list[tuple[str, sp.Expr]]]]:
    sizes = symbolic_sizes(setup)
    values = symbol_values(sizes)
    derived = programs.layout_class(setup.layout_class())
    fixed = {"fixed.parameters_bytes": _exact(sizes.parameter_bytes),
             "fixed.buffers_bytes": _exact(sizes.buffer_bytes), "fixed.inputs_bytes": _exact(sizes.input_bytes)}
    moments = Moments(sp.Add(*fixed.values()), values)
    adamw = programs.adamw(setup.optimizer_key())
    state = np.concatenate(segments_net(adamw["warmup"], STATE))  # what the warm-up step leaves: the state
    fixed["fixed.optimizer_state_bytes"] = moments.expression(np.concatenate([[0], state]))
    categories = np.zeros((len(TAPE_CATEGORIES), 2 * len(values)), dtype=np.int64)
    gradients = np.concatenate([[0], *segments_net(derived["backward_fresh"], GRADIENTS)])
    fixed["fixed.gradients_bytes"] = moments.expression(gradients)
    live = moments.vector(start=1) + np.concatenate([[0], state])
    if setup.zero_grad == "zeros":  # the warm-up step leaves its gradients
        live = live + gradients
    found: dict[str, list] = {name: [] for name in PHASES}
    for name, index, segments in step_walk(derived, adamw, setup.micro_batches, setup.zero_grad, warmup=False,
                                           has_gradients=setup.zero_grad == "zeros"):
        moments_found, live = moments.phase(name, live, segments, categories,
                                            index if setup.micro_batches > 1 else None)
        found[name] += moments_found
    forward, backward, optimizer = (found[name] for name in PHASES)
    bounds = {symbol: bound for symbol, bound in setup.lower_bounds().items()
              if not (symbol is B and setup.batch_one) and not (symbol is H and setup.head_one)
              and not (symbol is G and not setup.grouped or setup.kv_one)}
    table = moments.shifted_table(bounds)
    peaks = {phase: moments.prune(vectors, table) for phase, vectors in zip(PHASES, (forward, backward, optimizer))}
    step = moments.prune([moment for phase in PHASES for moment in peaks[phase]], table)

    def saved(where: str) -> sp.Expr:
        names = " ".join(derived["saved_by_component"][where].values()).split()
        return sp.expand(sp.Add(*(values[SYMBOLS.index(name)] for name in names)))

    result: dict[str, sp.Expr] = {"params": sp.expand(sizes.params), **fixed,
                                  "saved_activations_per_layer_bytes": saved("layer"),
                                  "saved_activations_outside_layers_bytes": saved("outside"),
                                  "saved_activations_bytes": sp.expand(L * saved("layer") + saved("outside"))}
    result.update({f"phases.{phase}.peak_bytes": _max([moments.expression(v) for v, _ in peaks[phase]])
                   for phase in PHASES})
    step_expressions = [moments.expression(v) for v, _ in step]
    result["peak_bytes"] = _max(step_expressions)
    if not setup.batch_one:
        result["max_batch"] = max_batch_formula(step_expressions)
    flops = flatten(flop_figures(sizes))
    result.update({key: sp.expand(sp.sympify(flops[key])) for key in FLOP_KEYS})
    candidates = {name: [(where, moments.expression(v)) for v, where in found]
                  for name, found in (*peaks.items(), ("step", step))}
    return result, candidates


def _max(moments: list) -> sp.Expr:
    return moments[0] if len(moments) == 1 else sp.Max(*moments, evaluate=False)


def max_batch_formula(moments: list) -> sp.Expr:
    """min_k ⌊(M − α_k)/β_k⌋ over the moments that grow with B, as −max(−⌊…⌋, …) (max is the one function)."""
    bounds = []
    for moment in moments:
        beta = sp.expand(sp.diff(moment, B))
        alpha = sp.expand(moment - beta * B)
        if beta != 0:
            bounds.append(-sp.floor((M - alpha) / beta, evaluate=False))
    return -sp.Max(*bounds, evaluate=False) if len(bounds) > 1 else -bounds[0]


# --- printing ---------------------------------------------------------------------------------------------------
def python_expression(expression: sp.Expr) -> str:
    """Python syntax using only + - * // ** and max() (integer arithmetic: evaluate with integer sizes)."""
    if expression.is_Integer or expression.is_Symbol:
        return str(expression)
    if isinstance(expression, sp.Max):
        return "max(" + ", ".join(python_expression(a) for a in expression.args) + ")"
    if isinstance(expression, sp.floor):
        numerator, denominator = sp.fraction(sp.together(expression.args[0]))
        return f"(({python_expression(sp.expand(numerator))})//({python_expression(sp.expand(denominator))}))"
    if isinstance(expression, sp.ceiling):  # ⌈n/d⌉ = -(-n // d)
        numerator, denominator = sp.fraction(sp.together(expression.args[0]))
        return f"(-(-({python_expression(sp.expand(numerator))})//({python_expression(sp.expand(denominator))})))"
    if expression.is_Add:
        terms = [python_expression(term) for term in expression.as_ordered_terms(order="grlex")]
        text = terms[0]
        for term in terms[1:]:
            text += f" - {term[1:]}" if term.startswith("-") and not term.startswith("-(") else f" + {term}"
        return text
    if expression.is_Mul:
        numerator, denominator = sp.fraction(expression)
        if denominator != 1:
            return f"({python_expression(numerator)})//({python_expression(denominator)})"
        coefficient, factors = expression.as_coeff_mul()
        parts = [_factor(f) for f in factors]
        if coefficient == -1:
            return "-" + "*".join(parts)
        return "*".join(([str(coefficient)] if coefficient != 1 else []) + parts)
    if expression.is_Pow and expression.exp.is_Integer and expression.exp > 0:
        return f"{_factor(expression.base)}**{expression.exp}"
    raise ValueError(f"cannot print {expression!r} with + - * // ** and max()")


def _factor(expression: sp.Expr) -> str:
    text = python_expression(expression)
    return f"({text})" if expression.is_Add else text


def readable(expression: sp.Expr) -> str:
    """The Python form with · for products and ² ³ for small powers, B collected; −max(−…) as min, ⌊…⌋ for
    floor division."""
    if isinstance(expression, sp.Max):
        return "max(" + ", ".join(readable(argument) for argument in expression.args) + ")"
    if expression.is_Mul and expression.as_coeff_mul()[0] == -1 and isinstance(-expression, sp.Max):
        return "min(" + ", ".join(readable(-argument) for argument in (-expression).args) + ")"
    if isinstance(expression, sp.floor):
        numerator, denominator = sp.fraction(sp.together(expression.args[0]))
        return f"⌊({readable(sp.expand(numerator))}) / ({readable(sp.expand(denominator))})⌋"
    if expression.is_Mul and any(isinstance(f, sp.floor) for f in expression.args):
        coefficient, factors = expression.as_coeff_mul()
        return ("-" if coefficient == -1 else "") + "·".join(readable(f) for f in factors)
    text = python_expression(sp.collect(expression, B) if expression.has(B) else expression)
    text = re.sub(r"\(-\(-\((\w+)\)//\((\d+)\)\)\)", r"⌈\1/\2⌉", text)  # python_expression's ceiling
    for power, mark in (("**2", "²"), ("**3", "³")):
        text = text.replace(power, mark)
    return text.replace("*", "·")


def saved_by_component(setup: FormulaKey = FormulaKey(), programs: Programs | None = None) -> dict[str, sp.Expr]:
    """Bytes each component saves for backward, as derived: per layer (×L) for the block components, once for
    the others; components that save nothing are left out."""
    values = dict(zip(SYMBOLS, symbol_values(symbolic_sizes(setup))))
    saved = (programs or installed()).layout_class(setup.layout_class())["saved_by_component"]
    return {name: sp.Add(*(values[symbol] for symbol in names.split()))
            for where in ("layer", "outside") for name, names in saved[where].items()}


def layout_setups(setup: FormulaKey, programs: Programs | None = None) -> dict[str, FormulaKey]:
    """The setup in each layout class of its arch, by domain: the general one (B, H >= 2; for grouped-query
    attention B >= 2, 2 <= G < H) first."""
    layouts = [layout for layout in LAYOUTS if setup.arch == "llama" or not layout[2]]
    if setup.grouped:
        layouts.sort(key=lambda layout: (not layout[2], layout[3], layout[0]))
    setups = [dataclasses.replace(setup, batch_one=layout[0], head_one=layout[1], grouped=layout[2],
                                  kv_one=layout[3]) for layout in layouts]
    return {one.domain(programs): one for one in setups}


def document(setup: FormulaKey, programs: Programs | None = None) -> dict:
    """`formula --json`: each figure of the general layout as a Python expression, nested as in `measure --json`,
    and the degenerate layouts' own expressions under "layouts"."""
    programs = programs or installed()
    classes = layout_setups(setup, programs)
    general, *others = classes
    return {"setup": {"arch": setup.arch, "dropout": setup.dropout, "positional": setup.positional,
                      "attention": setup.attention,
                      "checkpointing": setup.checkpointing, "micro_batches": setup.micro_batches,
                      "zero_grad": setup.zero_grad, "dtype": setup.dtype, "autocast": setup.autocast,
                      "optimizer": setup.optimizer,
                      "bytes_per_element": DTYPE_BYTES[setup.dtype]},
            "derived_on_torch": programs.derived_on, "domain": general,
            "symbols": {"L": "layers", "B": "batch size (of one micro-batch)", "T": "context length", "D": "d_model",
                        "H": "heads", "F": "d_ff", "V": "vocabulary", "G": "key/value heads",
                        "M": "memory budget in bytes (max_batch)"},
            **unflatten({key: python_expression(value)
                         for key, value in formulas(classes[general], programs).items()}),
            "layouts": {domain: unflatten({key: python_expression(value)
                                           for key, value in formulas(classes[domain], programs).items()
                                           if "peak_bytes" in key or key.startswith("saved_activations")})
                        for domain in others}}


def evaluate(expression: sp.Expr, sizes: dict[str, int]) -> int:
    """The expression's value at integer sizes ({"L": 48, "B": 1, ..., "M": budget}), through its Python form."""
    return int(eval(python_expression(expression), {"__builtins__": {}, "max": max}, dict(sizes)))  # noqa: S307
