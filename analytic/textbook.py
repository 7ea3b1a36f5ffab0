"""The textbook accounting of the adamwAccounting problem, done correctly for our model.

Peak memory = parameters + gradients + AdamW state + activations over the problem's listed components, FLOPs =
matmul FLOPs (backward = 2 x forward) + an AdamW count per parameter, days = FLOPs / (peak x MFU).
It is the problem's simplified model, not what PyTorch really holds (see analytic.exact for that).
Pure functions of a ModelConfig or a StepSpec; integers of bytes and FLOPs; no torch import.

Symbols: B batch, T context_length, L num_layers, D d_model, H num_heads, F d_ff, V vocab_size,
N = analytic.params.parameter_count(config) (untied head, learned position embedding when configured),
s = the setup's bytes per element (4 for float32).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from analytic.hardware import training_days  # noqa: F401 - the one formula, re-exported
from analytic.params import parameter_count
from analytic.units import UNITS
from model.config import ModelConfig, preset
from model.setup import Setup
from model.spec import StepSpec

NAME = "textbook"
# every activation kept (the B·H·T² scores too), one batch; any dtype (its s = bytes per element)
SETUP = {"arch": "reference", "autocast": "none", "attention": ("explicit", "sdpa-math"),
         "checkpointing": "none",
         "micro_batches": 1}
DESCRIPTION = ("The problem's accounting done right for our model: exact N, params+grads+2 AdamW states, "
               "activations over the listed components, matmul FLOPs, backward = 2x forward, 14 AdamW FLOPs/param")

# The torch AdamW step (decoupled weight decay, foreach or for-loop, not capturable), per parameter element:
#   1. p *= 1 - lr·wd                       1 (mul)
#   2. m.lerp_(g, 1-β1) = m + (1-β1)(g-m)   3 (sub, mul, add)
#   3. v *= β2                              1 (mul)
#   4. v.addcmul_(g, g, 1-β2)               3 (mul g·g, mul by 1-β2, add)
#   5. d = sqrt(v)                          1
#   6. d /= sqrt(1-β2^t)                    1 (bias correction 2; the scalar itself is per step, not per element)
#   7. d += eps                             1
#   8. p.addcdiv_(m, d, -step_size)         3 (div, mul, add; step_size carries bias correction 1)
# = 14 FLOPs per parameter. The textbook itemisation (m: 3, v: 4, update: sqrt, +eps, /, ×lr, − = 5,
# decoupled weight decay: ×(lr·λ), − = 2) gives the same 14. FlopCounterMode counts 0 for all of it.
ADAMW_FLOPS_PER_PARAM = 14

BACKWARD_FACTOR = 2  # Kaplan et al. 2020 / Hoffmann et al. 2022, as the problem instructs


@dataclass(frozen=True)
class TrainingProblem:
    """The problem's GPT-2 XL questions: the budget of (b), the run of (d)."""

    config: ModelConfig
    budget_bytes: int = 80 * UNITS["GB"]      # "fit within 80GB memory": 80·10^9 bytes
    steps: int = 400_000
    batch_size: int = 1024
    peak_flops_per_s: float = 19.5e12         # A100 dense fp32 (datasheet)
    mfu: float = 0.5

    def replace(self, **changes) -> "TrainingProblem":
        return dataclasses.replace(self, **changes)

    def spec(self, batch_size: int, optimizer: str = "foreach") -> StepSpec:
        """The problem's model at `batch_size` with AdamW `optimizer`, in the default setup."""
        return StepSpec(self.config, Setup(optimizer=optimizer), batch_size)


PROBLEM = TrainingProblem(config=preset("gpt2-xl"))


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes by category; total (the textbook peak) is their sum."""

    parameters: int
    gradients: int
    optimizer_state: int
    saved_activations: int
    activations_by_component: dict[str, int]

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.saved_activations

    def categories(self) -> dict[str, int]:
        return {"parameters": self.parameters, "gradients": self.gradients,
                "optimizer_state": self.optimizer_state, "saved_activations": self.saved_activations}


@dataclass(frozen=True)
class FlopBreakdown:
    """FLOPs of one training step by phase; total is their sum."""

    forward: int
    backward: int
    optimizer: int
    forward_by_component: dict[str, int]

    @property
    def total(self) -> int:
        return self.forward + self.backward + self.optimizer


def activation_elements(config: ModelConfig, batch_size: int) -> dict[str, int]:
    """Activation elements over exactly the problem's listed components, one term per component.

    Each component keeps its output for backward (the problem's simplification):
     1. norm1          B·T·D          (RMSNorm before attention)
     2. q_proj         B·T·D
     3. k_proj         B·T·D
     4. v_proj         B·T·D
     5. scores         B·H·T²         (QKᵀ)
     6. softmax        B·H·T²
     7. weighted_sum   B·T·D          (softmax · V, heads concatenated)
     8. out_proj       B·T·D
     9. norm2          B·T·D
    10. w1             B·T·F
    11. silu           B·T·F
    12. w2             B·T·D
        terms 1-12 repeat in each of the L layers: L·(8·B·T·D + 2·B·T·F + 2·B·H·T²)
    13. final_norm     B·T·D
    14. lm_head        B·T·V          (logits)
    15. cross_entropy  B·T·V          (its softmax over the logits)
    total = L·(8BTD + 2BTF + 2BHT²) + BTD + 2BTV; with F = 4D: L·(16BTD + 2BHT²) + BTD + 2BTV.
    """
    B, T, L, D, H, F, V = (batch_size, config.context_length, config.num_layers, config.d_model,
                           config.num_heads, config.d_ff, config.vocab_size)
    btd, btf, bhtt, btv = B * T * D, B * T * F, B * H * T * T, B * T * V
    per_layer = {"norm1": btd, "q_proj": btd, "k_proj": btd, "v_proj": btd, "scores": bhtt, "softmax": bhtt,
                 "weighted_sum": btd, "out_proj": btd, "norm2": btd, "w1": btf, "silu": btf, "w2": btd}
    terms = {name: L * value for name, value in per_layer.items()}
    terms.update(final_norm=btd, lm_head=btv, cross_entropy=btv)
    return terms


def memory(spec: StepSpec) -> MemoryBreakdown:
    """Peak memory of an AdamW step as the problem defines it: the sum of four categories.

    1. parameters        N·s
    2. gradients         N·s                 (one per parameter)
    3. optimizer_state   2·N·s               (AdamW's m and v)
    4. saved_activations s·activation_elements(config, B)
    peak = 4·N·s + s·[L·(8BTD + 2BTF + 2BHT²) + BTD + 2BTV] = a·B + b with b = 4·N·s.
    """
    config, s = spec.model, spec.setup.bytes_per_element
    n = parameter_count(config)
    by_component = {name: s * count for name, count in activation_elements(config, spec.batch_size).items()}
    return MemoryBreakdown(parameters=n * s, gradients=n * s, optimizer_state=2 * n * s,
                           saved_activations=sum(by_component.values()), activations_by_component=by_component)


def memory_line(spec: StepSpec) -> tuple[int, int]:
    """(a, b) of peak = a·B + b bytes (the spec's batch not read).

    1. b = memory(spec).total with the activations removed = 4·N·s
    2. a = the activation bytes of one sequence (activations are linear in B)
    """
    one = memory(spec.replace(batch_size=1))
    return one.saved_activations, one.total - one.saved_activations


def solve_linear_budget(per_sequence_bytes: int, fixed_bytes: int, budget_bytes: int) -> int:
    """The largest integer B with a·B + b <= budget, in closed form; 0 when not even B = 1 fits.

    1. a·B + b <= budget  <=>  B <= (budget - b) / a       (a > 0)
    2. B = floor((budget - b) / a), integer division on integers of bytes (exact at the boundary)
    3. returns 0 (not an error) when budget < a + b: "no batch fits" is an answer, and callers decide.
    """
    if per_sequence_bytes <= 0:
        raise ValueError(f"bytes per sequence must be positive, got {per_sequence_bytes}")
    if budget_bytes < fixed_bytes:
        return 0
    return (budget_bytes - fixed_bytes) // per_sequence_bytes


def max_batch_size(spec: StepSpec, budget_bytes: int) -> int:
    """The formula-set entry point: the textbook peak a·B + b (memory_line) solved for the budget."""
    return solve_linear_budget(*memory_line(spec), budget_bytes)


def forward_matmul_flops(config: ModelConfig, batch_size: int) -> dict[str, int]:
    """Matmul FLOPs of one forward pass by component, 2 FLOPs per multiply-add.

    1. q_proj, k_proj, v_proj   2·B·T·D² each          (QKV: 6·B·T·D²)
    2. scores                   2·B·T²·D               (QKᵀ over all heads: H·2·B·T²·(D/H))
    3. weighted_sum             2·B·T²·D               (softmax · V)
    4. out_proj                 2·B·T·D²
    5. w1, w2                   2·B·T·D·F each         (FFN: 4·B·T·D·F)
        terms 1-5 in each of the L layers
    6. lm_head                  2·B·T·D·V
    forward = L·(8BTD² + 4BT²D + 4BTDF) + 2BTDV. Norms, softmax, SiLU, cross-entropy: no matmul.
    """
    B, T, L, D, F, V = (batch_size, config.context_length, config.num_layers, config.d_model, config.d_ff,
                        config.vocab_size)
    proj, attn, ffn = 2 * B * T * D * D, 2 * B * T * T * D, 2 * B * T * D * F
    per_layer = {"q_proj": proj, "k_proj": proj, "v_proj": proj, "scores": attn, "weighted_sum": attn,
                 "out_proj": proj, "w1": ffn, "w2": ffn}
    terms = {name: L * value for name, value in per_layer.items()}
    terms["lm_head"] = 2 * B * T * D * V
    return terms


def flops(config: ModelConfig, batch_size: int) -> FlopBreakdown:
    """FLOPs of one AdamW training step.

    1. forward   = sum of forward_matmul_flops (matmuls only)
    2. backward  = 2 x forward (grad w.r.t. input and w.r.t. weight: one matmul each per forward matmul)
    3. optimizer = ADAMW_FLOPS_PER_PARAM · N = 14·N (independent of B)
    """
    by_component = forward_matmul_flops(config, batch_size)
    forward = sum(by_component.values())
    return FlopBreakdown(forward=forward, backward=BACKWARD_FACTOR * forward,
                         optimizer=ADAMW_FLOPS_PER_PARAM * parameter_count(config),
                         forward_by_component=by_component)


def problem_figures(problem: TrainingProblem = PROBLEM) -> dict[str, float]:
    """The audit's figures for this formula set: the problem's (b), (c), (d) answered for problem.config.

    1. fixed_memory_bytes = b, per_batch_memory_bytes = a (memory_line)
    2. max_batch_80GB = solve_linear_budget(a, b, budget)
    3. adamw_flops = 14·N; flops_per_step = forward + backward + optimizer at problem.batch_size
    4. training_days from flops_per_step
    """
    config = problem.config
    a, b = memory_line(StepSpec(config))
    step = flops(config, problem.batch_size)
    return {
        "params": parameter_count(config),
        "fixed_memory_bytes": b,
        "per_batch_memory_bytes": a,
        "max_batch_80GB": solve_linear_budget(a, b, problem.budget_bytes),
        "max_batch_80GiB": solve_linear_budget(a, b, 80 * UNITS["GiB"]),
        "adamw_flops_per_param": ADAMW_FLOPS_PER_PARAM,
        "adamw_flops": step.optimizer,
        "flops_per_step": step.total,
        "training_days": training_days(step.total, problem.steps, problem.peak_flops_per_s, problem.mfu),
    }


def predict(spec: StepSpec) -> dict:
    """Figures (analytic.figures) of the textbook accounting. `optimizer` changes nothing: the textbook has no
    optimizer temporaries. flops.* are matmul FLOPs plus the AdamW count (no elementwise convention)."""
    config, batch_size = spec.model, spec.batch_size
    mem, step = memory(spec), flops(config, batch_size)
    return {
        "params": parameter_count(config),
        "peak_bytes": mem.total,
        "categories_at_peak": mem.categories(),
        "saved_activations_bytes": mem.saved_activations,
        "saved_activations_by_component": dict(mem.activations_by_component),
        "flops": {"forward": step.forward, "backward": step.backward, "optimizer": step.optimizer},
        "flops_matmul": {"forward": step.forward, "backward": step.backward},
        "adamw_flops_per_param": ADAMW_FLOPS_PER_PARAM,
    }
