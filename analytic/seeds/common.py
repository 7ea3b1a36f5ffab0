"""Terms the five seed answers share, so that each seed module states only its choices.

A seed is encoded as a SeedFormulas: its parameter count, its activation terms (a short table, see
`activation_terms`), its bytes per element, its forward FLOPs, its AdamW FLOPs per parameter (and the itemisation
it gives for that constant, if any). From those, `predict` gives the figures (analytic.figures) for any config and
`recompute` answers the problem's GPT-2 XL questions exactly as the seed's own formulas do.
Everything else (backward = 2 x forward; params + grads + m + v = 4·N elements) is common to all five answers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from analytic import textbook
from analytic.textbook import BACKWARD_FACTOR, PROBLEM, TrainingProblem
from analytic.units import UNITS
from model.config import ModelConfig
from model.spec import StepSpec

GB, GiB = UNITS["GB"], UNITS["GiB"]
UNATTRIBUTED = "*"  # an activation term the answer does not tie to one component
_TERM = re.compile(r"^(\d*)([BTDFHV]+)$")


def param_count(config: ModelConfig, *, position: bool, norms: bool, ffn_matrices: int, ffn_width: int,
                final_norm: bool) -> int:
    """Parameter count with the choices the answers differ on.

    1. token embedding V·D and untied LM head D·V: 2·V·D (all five count both)
    2. position embedding T·D if `position`
    3. per layer: attention 4·D², FFN ffn_matrices·D·ffn_width, two RMSNorm gains 2·D if `norms`
    4. final RMSNorm gain D if `final_norm`
    """
    V, T, L, D = config.vocab_size, config.context_length, config.num_layers, config.d_model
    layer = 4 * D * D + ffn_matrices * D * ffn_width + (2 * D if norms else 0)
    return 2 * V * D + (T * D if position else 0) + L * layer + (D if final_norm else 0)


def counted_params(*, position: bool, norms: bool, ffn_matrices: int, ffn_width: str,
                   final_norm: bool) -> Callable[[ModelConfig], int]:
    """The parameter count of an answer's choices as a function of the config; ffn_width "4D" (written into its
    formulas) or "F" (config.d_ff)."""
    def params(config: ModelConfig) -> int:
        width = 4 * config.d_model if ffn_width == "4D" else config.d_ff
        return param_count(config, position=position, norms=norms, ffn_matrices=ffn_matrices, ffn_width=width,
                           final_norm=final_norm)
    params.__doc__ = (f"N with position={position}, norms={norms}, {ffn_matrices} FFN matrices of width "
                      f"{ffn_width}, final_norm={final_norm}")
    return params


def term_value(term: str, config: ModelConfig, batch_size: int) -> int:
    """'4BTD' -> 4·B·T·D. Letters: B batch, T context, D d_model, F d_ff, H heads, V vocab; digits a coefficient."""
    match = _TERM.match(term)
    if not match:
        raise ValueError(f"cannot read activation term {term!r}")
    sizes = {"B": batch_size, "T": config.context_length, "D": config.d_model, "F": config.d_ff,
             "H": config.num_heads, "V": config.vocab_size}
    value = int(match.group(1) or 1)
    for letter in match.group(2):
        value *= sizes[letter]
    return value


def activation_terms(table: str, config: ModelConfig, batch_size: int, repeat: int = 1) -> dict[str, int]:
    """Elements by component from a table 'norm1=BTD q_proj=2BTD scores=BHTT ...', each term times `repeat`.

    A component may appear more than once (its terms add); '*' marks a term the answer does not attribute.
    """
    elements: dict[str, int] = {}
    for entry in table.split():
        component, term = entry.split("=")
        elements[component] = elements.get(component, 0) + repeat * term_value(term, config, batch_size)
    return elements


def params_flops(multiple: int, params: Callable[[ModelConfig], int]) -> Callable[[ModelConfig, int], int]:
    """Forward FLOPs = multiple · N · B·T (Kaplan: 2 FLOPs per parameter per token)."""
    def forward(config: ModelConfig, batch_size: int) -> int:
        return multiple * params(config) * batch_size * config.context_length
    forward.__doc__ = f"forward = {multiple}·N·B·T"
    return forward


def matmul_flops_without(*left_out: str) -> Callable[[ModelConfig, int], int]:
    """Forward FLOPs = the textbook matmul terms (textbook.forward_matmul_flops) minus the components left out."""
    def forward(config: ModelConfig, batch_size: int) -> int:
        terms = textbook.forward_matmul_flops(config, batch_size)
        return sum(value for name, value in terms.items() if name not in left_out)
    forward.__doc__ = f"forward = textbook matmul FLOPs without {', '.join(left_out) or 'nothing'}"
    return forward


@dataclass(frozen=True)
class SeedFormulas:
    """One answer's formulas, generalised to any config.

    params(config)                 its parameter count
    layer_terms / outside_terms    its activation terms per layer (times L) and outside the layers
    bytes_per_element              4 (float32) unless the answer chose otherwise
    forward_flops(config, B)       its forward FLOPs; backward = 2 x forward in all five
    adamw_flops_per_param          the constant its AdamW FLOPs use
    adamw_itemised                 the per-operation counts it gives for that constant (None: no derivation)
    training_counts_optimizer      whether its training FLOPs add the AdamW step
    """

    params: Callable[[ModelConfig], int]
    layer_terms: str
    outside_terms: str
    bytes_per_element: int
    forward_flops: Callable[[ModelConfig, int], int]
    adamw_flops_per_param: int
    adamw_itemised: tuple[int, ...] | None
    training_counts_optimizer: bool = False

    def activation_elements(self, config: ModelConfig, batch_size: int) -> dict[str, int]:
        """L·(layer terms) + outside terms, by component."""
        elements = activation_terms(self.layer_terms, config, batch_size, repeat=config.num_layers)
        for name, value in activation_terms(self.outside_terms, config, batch_size).items():
            elements[name] = elements.get(name, 0) + value
        return elements

    def memory_line(self, config: ModelConfig) -> tuple[int, int]:
        """(a, b) of memory = a·B + b bytes: b = 4·N·s (params, grads, m, v), a = s·(activations of B = 1)."""
        s = self.bytes_per_element
        return s * sum(self.activation_elements(config, 1).values()), 4 * s * self.params(config)

    def step_flops(self, config: ModelConfig, batch_size: int) -> dict[str, int]:
        """forward, backward = 2·forward, optimizer = adamw_flops_per_param·N."""
        forward = self.forward_flops(config, batch_size)
        return {"forward": forward, "backward": BACKWARD_FACTOR * forward,
                "optimizer": self.adamw_flops_per_param * self.params(config)}

    def predict(self, spec: StepSpec) -> dict:
        """Figures of this answer for any config; `optimizer` changes nothing (no answer models temporaries)."""
        config, batch_size = spec.model, spec.batch_size
        s, n = self.bytes_per_element, self.params(config)
        elements = self.activation_elements(config, batch_size)
        saved = s * sum(elements.values())
        figures = {
            "params": n,
            "peak_bytes": 4 * s * n + saved,
            "categories_at_peak": {"parameters": s * n, "gradients": s * n, "optimizer_state": 2 * s * n,
                                   "saved_activations": saved},
            "saved_activations_bytes": saved,
            "flops": self.step_flops(config, batch_size),
            "adamw_flops_per_param": self.adamw_flops_per_param,
        }
        if UNATTRIBUTED not in elements:
            figures["saved_activations_by_component"] = {name: s * v for name, v in elements.items()}
        return figures

    def recompute(self, problem: TrainingProblem = PROBLEM) -> dict[str, float | int | None]:
        """The problem's (b), (c), (d) figures from this answer's own formulas, with exact integers.

        1. fixed_memory_bytes b and per_batch_memory_bytes a from memory_line
        2. max_batch_80GB = floor((budget - b) / a) (textbook.solve_linear_budget)
        3. adamw_flops_per_param = the sum of its itemisation (None when it gives none);
           adamw_flops = the constant it uses x N
        4. flops_per_step = forward + backward (+ optimizer if it counts it) at problem.batch_size
        5. training_days = steps · flops_per_step / (peak · MFU) / 86400
        """
        config = problem.config
        a, b = self.memory_line(config)
        step = self.step_flops(config, problem.batch_size)
        per_step = step["forward"] + step["backward"] + (step["optimizer"] if self.training_counts_optimizer else 0)
        return {
            "params": self.params(config),
            "fixed_memory_bytes": b,
            "per_batch_memory_bytes": a,
            "max_batch_80GB": textbook.solve_linear_budget(a, b, problem.budget_bytes),
            "adamw_flops_per_param": sum(self.adamw_itemised) if self.adamw_itemised else None,
            "adamw_flops": step["optimizer"],
            "flops_per_step": per_step,
            "training_days": textbook.training_days(per_step, problem.steps, problem.peak_flops_per_s,
                                                    problem.mfu),
        }
