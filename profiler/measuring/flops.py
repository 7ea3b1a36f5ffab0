"""FLOP counting: torch's FlopCounterMode, extended through its `custom_mapping`.

1. Matmuls (mm, bmm, ...) keep FlopCounterMode's own formulas: 2 FLOPs per multiply-add.
2. The CPU SDPA kernels (`_scaled_dot_product_flash_attention_for_cpu` and its backward) have no formula in
   torch, so attention would silently count 0 on CPU; they get torch's own sdpa formulas (4·B·H·T²·Dh forward,
   10·B·H·T²·Dh backward, causal masking not halved: the same numbers as the fused CUDA kernels).
3. Elementwise and reduction ops, which FlopCounterMode counts as 0, get the convention table ELEMENTWISE below:
   FLOPs per element of the tensor named in its basis column. Anything not in the table counts 0: copies, views,
   masked_fill and embedding lookups move data without arithmetic.

One FlopCounterMode with both kinds of formula gives per-op counts per module (forward and backward attributed by
its ModuleTracker); `split_counts` separates matmul from elementwise FLOPs afterwards. Its module hooks hold
gradients a little longer than a plain step does, so a memory measurement counts with OpFlops instead: the same
formulas applied op by op inside the tracker (tests check both agree).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_backward_flop_count, sdpa_flop_count
from torch.utils._pytree import tree_flatten

from model.step import train_step
from model.vocabulary import COMPONENTS, PHASES

aten = torch.ops.aten

# op -> (FLOPs per element, basis): basis "out" counts the output's elements (for in-place ops with no output,
# the first argument's), an integer i the elements of positional argument i (reductions count their input;
# the loss counts its class indices).
ELEMENTWISE: dict[object, tuple[int, str]] = {
    # 1 FLOP per element: one arithmetic operation per output element.
    aten.add: (1, "out"), aten.add_: (1, "out"), aten.sub: (1, "out"), aten.mul: (1, "out"),
    aten.mul_: (1, "out"), aten.div: (1, "out"), aten.div_: (1, "out"), aten.neg: (1, "out"),
    aten.pow: (1, "out"),  # x**2: one multiply
    aten.rsqrt: (1, "out"), aten.sqrt: (1, "out"),
    # reductions: n-1 adds (+1 divide for mean) per output, 1 per input element.
    aten.mean: (1, 0), aten.sum: (1, 0),
    # softmax (and the SDPA math path's _safe_softmax, which zeroes fully masked rows): max, subtract, exp, sum,
    # divide = 5 per element; backward y·(g - Σ g·y): mul, sum, sub, mul = 4.
    aten._softmax: (5, "out"), aten._safe_softmax: (5, "out"), aten._softmax_backward_data: (4, "out"),
    # log-softmax: max, subtract, exp, sum, subtract log-sum = 5; backward g - exp(y)·Σg: exp, sum, mul, sub = 4.
    aten._log_softmax: (5, "out"), aten._log_softmax_backward_data: (4, "out"),
    # silu x·σ(x), σ = 1/(1+exp(-x)): neg, exp, add, divide, multiply = 5;
    # backward g·σ·(1 + x·(1-σ)): σ (4), 1-σ, x·, 1+, σ·, g· = 9.
    aten.silu: (5, "out"), aten.silu_backward: (9, "out"),
    # GELU's tanh form 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): x³ 2, ·0.044715, +x, ·√(2/π), tanh, 1+, ·x, ·0.5
    # = 9; its backward (gelu_backward's tanh branch in torch): x², x³, κ·x³, +x, β·, tanh, 0.5·x, 1+t, ·0.5,
    # t², 1-t², 3κ·x², 1+, β·, left·, ·inner, sum, ·g = 18.
    aten.gelu: (9, "out"), aten.gelu_backward: (18, "out"),
    # LayerNorm (one native_layer_norm): mean, subtract, square, variance, normalise, gain, bias = 7 per element
    # (per-row divides and rsqrt not counted); backward: input gradient 11 (g·w, x̂ 2, g·w·x̂, two sums, N·g·w,
    # two subtracts, x̂·sum, ·rstd/N), gain gradient 2, bias gradient 1 = 14 per element.
    aten.native_layer_norm: (7, 0), aten.native_layer_norm_backward: (14, 0),
    # dropout: x·mask·scale, 2 per element (drawing the mask not counted); backward g·mask·scale, 2.
    aten.native_dropout: (2, 0), aten.native_dropout_backward: (2, 0),
    # cross-entropy picks one log-probability per target and sums them: 1 per target, forward and backward.
    aten.nll_loss_forward: (1, 1), aten.nll_loss_backward: (1, 2),
    # embedding backward scatter-adds every element of the incoming gradient: 1 per element.
    aten.embedding_dense_backward: (1, 0),
    # AdamW, for-loop and foreach: p·=(1-lr·wd) 1; m.lerp_(g, 1-β1) a+w·(b-a) 3; v·=β2 1; v.addcmul_(g, g, 1-β2)
    # 3; sqrt(v) 1; /sqrt(bias_correction2) 1; +eps 1; p.addcdiv_(m, denom, -step_size) 3: 14 per parameter,
    # plus 1 per parameter tensor for the step counter (+= 1).
    aten.lerp_: (3, "out"), aten.addcmul_: (3, "out"), aten.addcdiv_: (3, "out"),
    aten._foreach_add_: (1, "out"), aten._foreach_mul_: (1, "out"), aten._foreach_div_: (1, "out"),
    aten._foreach_sqrt: (1, "out"), aten._foreach_sqrt_: (1, "out"),
    aten._foreach_lerp_: (3, "out"), aten._foreach_addcmul_: (3, "out"), aten._foreach_addcdiv_: (3, "out"),
    # fused AdamW: one kernel doing the same arithmetic as the for-loop path, 14 per parameter element.
    aten._fused_adamw_: (14, 0),
}
ELEMENTWISE = {getattr(op, "overloadpacket", op): rule for op, rule in ELEMENTWISE.items()}
MATMUL_OPS = frozenset(flop_registry) | {aten._scaled_dot_product_flash_attention_for_cpu,
                                         aten._scaled_dot_product_flash_attention_for_cpu_backward}


def _numel(value) -> int:
    return sum(t.numel() for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor))


def _elementwise_formula(flops_per_element: int, basis: str | int):
    def formula(*args, out_val=None, **kwargs) -> int:
        if basis == "out":
            return flops_per_element * (_numel(out_val) or _numel(args[0]))
        return flops_per_element * _numel(args[basis])
    formula._get_raw = True
    return formula


def _cpu_sdpa_forward(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


_cpu_sdpa_forward._get_raw = _cpu_sdpa_backward._get_raw = True


def custom_mapping() -> dict:
    """Formulas keyed by overload packet and by every overload of it.

    FlopCounterMode decomposes any op whose *overload* is not a registry key (it then counts the pieces), so
    an op with a decomposition, such as silu_backward, must be registered overload by overload to count as one.
    """
    mapping = {op: _elementwise_formula(*rule) for op, rule in ELEMENTWISE.items()}
    mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_forward
    mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_sdpa_backward
    for packet, formula in list(mapping.items()):
        for overload in packet.overloads():
            mapping[getattr(packet, overload)] = formula
    return mapping


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=custom_mapping())


class OpFlops:
    """Counts FLOPs op by op with FlopCounterMode's formulas (torch's registry and custom_mapping above), as the
    StorageTracker's on_op callback: per phase, and in forward per component (`component()` names the innermost
    component module running); in backward, what checkpointing recomputes also under "recompute"; `calls`, every
    counted call in order, (phase, op's overload packet, FLOPs) once per phase it counts in. No module hooks of its
    own, so counting leaves the step's memory exactly as it is."""

    def __init__(self, component=lambda: None, recomputing=lambda: False):
        self.formulas = {**flop_registry, **{op: f for op, f in custom_mapping().items()
                                             if isinstance(op, torch._ops.OpOverloadPacket)}}
        self.component = component
        self.recomputing = recomputing  # in backward: a checkpointed block's forward running again
        self.phase = None
        self.by_phase: dict[str, dict] = {}
        self.forward_by_component: dict[str, int] = {}
        self.calls: list[tuple[str, object, int]] = []

    def count(self, func, args, kwargs, out) -> None:
        formula = self.formulas.get(func.overloadpacket)
        if formula is None or self.phase is None:
            return
        flops = formula(*args, **kwargs, out_val=out)  # torch's registry entries come shape-wrapped already
        phases = (self.phase, "recompute") if self.phase == "backward" and self.recomputing() else (self.phase,)
        for phase in phases:  # recomputation is backward work, also counted on its own
            ops = self.by_phase.setdefault(phase, {})
            ops[func.overloadpacket] = ops.get(func.overloadpacket, 0) + flops
            self.calls.append((phase, func.overloadpacket, flops))
        component = self.component() if self.phase == "forward" else None
        if component is not None:
            self.forward_by_component[component] = self.forward_by_component.get(component, 0) + flops


def split_counts(op_counts: dict) -> tuple[int, int]:
    """(matmul FLOPs, elementwise FLOPs) of one {op: FLOPs} dict."""
    matmul = sum(count for op, count in op_counts.items() if op in MATMUL_OPS)
    return matmul, sum(op_counts.values()) - matmul


def snapshot(counter: FlopCounterMode) -> dict[str, dict]:
    """A copy of the counter's {module: {op: FLOPs}}, to be differenced between phase marks."""
    return counter.get_flop_counts()


def difference(after: dict[str, dict], before: dict[str, dict]) -> dict[str, dict]:
    result = {}
    for module, ops in after.items():
        earlier = before.get(module, {})
        delta = {op: count - earlier.get(op, 0) for op, count in ops.items() if count - earlier.get(op, 0)}
        if delta:
            result[module] = delta
    return result


def flop_counter_step(model, adamw, tokens, targets, setup) -> dict[str, dict[str, dict]]:
    """One training step (in `setup`, a model.setup.Setup) under FlopCounterMode: {phase: {module: {op: FLOPs}}},
    "Global" holding every op.

    The per-module view of torch's own counter (forward and backward attributed by its ModuleTracker). Run it on
    a step of its own: its hooks shift when some gradients die, so it must not share a step with a memory
    measurement.
    """
    counter, snapshots = flop_counter(), []
    with counter:
        train_step(model, adamw, tokens, targets, setup, lambda phase: snapshots.append(snapshot(counter)))
    return {phase: difference(after, before) for phase, before, after in zip(PHASES, snapshots, snapshots[1:])}


def by_component(counts: dict[str, dict]) -> dict[str, int]:
    """FLOPs by component (module name's last part; position_embedding is embedding); the rest goes to 'other'.

    Component modules are leaves of the module tree, so summing them never counts an op twice; `checkpoint`, the
    wrapper around a whole block (a component for what it saves), is left out for that reason.
    """
    totals = dict.fromkeys(COMPONENTS, 0)
    for module, ops in counts.items():
        last = module.rsplit(".", 1)[-1]
        last = "embedding" if last == "position_embedding" else last
        if last in totals and module != "Global" and last != "checkpoint":
            totals[last] += sum(ops.values())
    totals["other"] = sum(counts.get("Global", {}).values()) - sum(totals.values())
    return totals
