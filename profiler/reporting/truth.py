"""The seeds' questions answered by our exact model and by measurement on meta: the audit's "exact" and
"measured" blocks, with the same figure keys as the seeds' (analytic.audit), for the card's GPT-2 XL and, beside
them, for GPT-2 XL as published (hf-gpt2-xl: LayerNorm, GELU, biases, dropout 0.1, tied LM head)."""
from __future__ import annotations

from typing import Any

from analytic import exact
from analytic.exact.max_batch import max_batch_size
from analytic.textbook import PROBLEM, TrainingProblem, training_days
from analytic.figures import model_flops
from analytic.units import UNITS
from profiler.measuring.max_batch import measured_max_batch
from profiler.measuring.measure import measure_flops, step_phases

BUDGET_80GIB = 80 * UNITS["GiB"]


def _days(flops_per_step: int, problem: TrainingProblem) -> float:
    return training_days(flops_per_step, problem.steps, problem.peak_flops_per_s, problem.mfu)


def exact_block(problem: TrainingProblem = PROBLEM, optimizer: str = "foreach") -> dict[str, Any]:
    """Our closed forms: the peak solved for the budget, AdamW and step FLOPs (matmul + elementwise)."""
    config = problem.config
    at_one = exact.predict(config, 1, optimizer)
    flops = exact.predict(config, problem.batch_size, optimizer)["flops"]
    step = model_flops(flops)
    return {"params": at_one["params"], "peak_bytes_batch_1": at_one["peak_bytes"],
            "peak_phase_batch_1": at_one["peak_phase"],
            "max_batch_80GB": max_batch_size(config, problem.budget_bytes, optimizer),
            "max_batch_80GiB": max_batch_size(config, BUDGET_80GIB, optimizer),
            "adamw_flops_per_param": at_one["adamw_flops_per_param"], "adamw_flops": flops["optimizer"],
            "flops_per_step": step, "training_days": _days(step, problem)}


def measured_block(problem: TrainingProblem = PROBLEM, optimizer: str = "foreach") -> dict[str, Any]:
    """Measured on meta: the largest batch whose measured peak fits (measured_max_batch), FLOPs of a step at the
    run's batch (counted without tracking memory, measure_flops)."""
    config = problem.config
    at_one = step_phases(config, 1, "meta", optimizer)
    counted = measure_flops(config, problem.batch_size, "meta", optimizer)
    flops = counted["flops"]
    step = model_flops(flops)
    peaks = {1: at_one["peak_bytes"]}  # measured once for both budgets
    return {"device": "meta", "params": at_one["params"], "peak_bytes_batch_1": at_one["peak_bytes"],
            "peak_phase_batch_1": at_one["peak_phase"],
            "max_batch_80GB": measured_max_batch(config, problem.budget_bytes, "meta", optimizer, peaks)[0],
            "max_batch_80GiB": measured_max_batch(config, BUDGET_80GIB, "meta", optimizer, peaks)[0],
            "adamw_flops_per_param": counted["adamw_flops_per_param"], "adamw_flops": flops["optimizer"],
            "flops_per_step": step, "training_days": _days(step, problem)}


def truth_blocks(with_measurement: bool = True, problem: TrainingProblem = PROBLEM) -> dict[str, Any]:
    """exact and measured (with_measurement) answers for the problem's model, then for its sizes with GPT-2's
    block as published (for the problem's GPT-2 XL: hf-gpt2-xl)."""
    published = problem.replace(config=problem.config.replace(arch="gpt2"))
    blocks = {"exact": exact_block(problem)}
    if with_measurement:
        blocks["measured"] = measured_block(problem)
    blocks["exact, as published"] = exact_block(published)
    if with_measurement:
        blocks["measured, as published"] = measured_block(published)
    return blocks
