"""The seeds' questions answered by our exact model: the audit's "exact" blocks, with the same figure keys as the
seeds' (analytic.audit), for GPT-2 XL with the reference block and, beside them, for GPT-2 XL as published
(hf-gpt2-xl: LayerNorm, GELU, biases, dropout 0.1, tied LM head); the measured blocks
(profiler.experiments.truth) stand beside them where they were measured."""
from __future__ import annotations

from typing import Any

from analytic.figures import model_flops
from analytic.formula_sets import exact_set
from analytic.textbook import PROBLEM, TrainingProblem, training_days
from analytic.units import UNITS

BUDGET_80GIB = 80 * UNITS["GiB"]


def days(flops_per_step: int, problem: TrainingProblem) -> float:
    return training_days(flops_per_step, problem.steps, problem.peak_flops_per_s, problem.mfu)


def exact_block(problem: TrainingProblem = PROBLEM, optimizer: str = "foreach") -> dict[str, Any]:
    """Our closed forms: the peak solved for the budget, AdamW and step FLOPs (matmul + elementwise)."""
    exact, spec = exact_set(), problem.spec(1, optimizer)
    at_one = exact.predict(spec)
    flops = exact.predict(problem.spec(problem.batch_size, optimizer))["flops"]
    step = model_flops(flops)
    return {"params": at_one["params"], "peak_bytes_batch_1": at_one["peak_bytes"],
            "peak_phase_batch_1": at_one["peak_phase"],
            "max_batch_80GB": exact.max_batch_size(spec, problem.budget_bytes),
            "max_batch_80GiB": exact.max_batch_size(spec, BUDGET_80GIB),
            "adamw_flops_per_param": at_one["adamw_flops_per_param"], "adamw_flops": flops["optimizer"],
            "flops_per_step": step, "training_days": days(step, problem)}


def as_published(problem: TrainingProblem) -> TrainingProblem:
    """The problem's sizes with GPT-2's block as published (for the problem's GPT-2 XL: hf-gpt2-xl)."""
    return problem.replace(config=problem.config.replace(arch="gpt2"))


def audit_blocks(problem: TrainingProblem = PROBLEM,
                 measured: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)) -> dict[str, Any]:
    """The audit's extra blocks: exact (and `measured`, where given) answers for the problem's model, then for
    its sizes with GPT-2's block as published."""
    blocks = {"exact": exact_block(problem), "measured": measured[0],
              "exact, as published": exact_block(as_published(problem)), "measured, as published": measured[1]}
    return {name: block for name, block in blocks.items() if block is not None}
