"""The seeds' questions answered by measurement on meta: the audit's "measured" blocks, with the same figure keys
as the seeds' (analytic.audit), beside the exact ones (profiler.reports.truth), for GPT-2 XL with the reference
block and for GPT-2 XL as published; and the audit a sweep saves beside its results for the report."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analytic.audit import audit
from analytic.figures import model_flops
from analytic.formula_sets import exact_set
from analytic.textbook import PROBLEM, TrainingProblem
from profiler.measuring.max_batch import measured_max_batch
from profiler.measuring.measure import measure_flops, step_phases
from profiler.measuring.parallel import run_calls
from profiler.reports.folder import claim
from profiler.reports.results import AUDIT_FILE
from profiler.reports.truth import BUDGET_80GIB, as_published, audit_blocks, days


def probed_batches(problem: TrainingProblem, optimizer: str = "foreach") -> list[int]:
    """The batches whose measured peaks answer the block: 1, and for each budget the exact set's answer and one
    more (which confirm it, profiler.measuring.search.confirm_max_batch); 1 alone outside the exact set's
    domain (the search then measures what it needs)."""
    batches = {1}
    for budget in (problem.budget_bytes, BUDGET_80GIB):
        try:
            guess = exact_set().max_batch_size(problem.spec(1, optimizer), budget)
        except ValueError:
            continue
        batches |= {guess, guess + 1} - {0}
    return sorted(batches)


def measured_blocks(problems: list[TrainingProblem], optimizer: str = "foreach",
                    progress: bool = True) -> list[dict[str, Any]]:
    """measured_block of each problem, their steps measured in parallel (profiler.measuring.parallel)."""
    probed = [probed_batches(problem, optimizer) for problem in problems]
    calls = []
    for problem, batches in zip(problems, probed):
        calls.append((measure_flops, (problem.spec(problem.batch_size, optimizer), "meta")))
        calls += [(step_phases, (problem.spec(batch, optimizer), "meta")) for batch in batches]
    results = iter(run_calls(calls, "measuring steps on meta", progress))
    blocks = []
    for problem, batches in zip(problems, probed):
        counted = next(results)
        phases = {batch: next(results) for batch in batches}
        blocks.append(measured_block(problem, optimizer, counted, phases))
    return blocks


def measured_block(problem: TrainingProblem, optimizer: str, counted: dict, phases: dict[int, dict]) -> dict[str, Any]:
    """Measured on meta: the largest batch whose measured peak fits (measured_max_batch), FLOPs of a step at the
    run's batch. `counted`: measure_flops at the run's batch (FLOPs without tracking memory); `phases`: batch ->
    step_phases, batch 1 among them (more are measured by the search where they refute the exact answer)."""
    spec = problem.spec(1, optimizer)
    at_one = phases[1]
    flops = counted["flops"]
    step = model_flops(flops)
    peaks = {batch: figures["peak_bytes"] for batch, figures in phases.items()}  # shared by both budgets
    return {"device": "meta", "params": at_one["params"], "peak_bytes_batch_1": at_one["peak_bytes"],
            "peak_phase_batch_1": at_one["peak_phase"],
            "max_batch_80GB": measured_max_batch(spec, problem.budget_bytes, "meta", peaks)[0],
            "max_batch_80GiB": measured_max_batch(spec, BUDGET_80GIB, "meta", peaks)[0],
            "adamw_flops_per_param": counted["adamw_flops_per_param"], "adamw_flops": flops["optimizer"],
            "flops_per_step": step, "training_days": days(step, problem)}


def truth_blocks(with_measurement: bool = True, problem: TrainingProblem = PROBLEM) -> dict[str, Any]:
    """exact and measured (with_measurement) answers for the problem's model, then for its sizes with GPT-2's
    block as published (for the problem's GPT-2 XL: hf-gpt2-xl)."""
    measured = measured_blocks([problem, as_published(problem)]) if with_measurement else (None, None)
    return audit_blocks(problem, tuple(measured))


def save_audit(out_dir: str | Path) -> Path:
    """The audit with our exact and measured (meta) answers, saved beside the results for the report."""
    result = audit(extra_blocks=truth_blocks(with_measurement=True))
    path = claim(out_dir, [AUDIT_FILE]) / AUDIT_FILE
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
