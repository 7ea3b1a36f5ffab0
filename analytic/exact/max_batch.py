"""Maximum batch size in a memory budget, solved from the closed form (no search).

Every moment of the step is linear in B (activations scale with B, the rest does not), and the step's peak is
the highest of a fixed set of moments: peak(B) = max_k (α_k + β_k·B), convex and piecewise linear. So
peak(B) ≤ budget ⇔ α_k + β_k·B ≤ budget for every k, and the largest such B is min over β_k > 0 of
floor((budget − α_k) / β_k). α_k and β_k are read off the exact moments at B = 2 and B = 3 (one attention layout
holds for every B ≥ 2); when that leaves less than 2, B = 1, whose layout differs, is checked directly.
With the setup's micro_batches = k, B is the batch of one micro-batch: the answer is the largest micro-batch, the
step's batch is k times it.
"""
from __future__ import annotations

import numpy as np

from analytic.exact import sharded
from analytic.exact.memory import layout_phases, step_figures
from analytic.exact.source import Programs, installed
from analytic.exact.versions import outside_domain
from analytic.sizes import head_layout, sizes_of
from model.spec import StepSpec
from model.vocabulary import PHASES


def peak_lines(programs: Programs, spec: StepSpec) -> tuple[np.ndarray, np.ndarray]:
    """(α, β) of every moment of the steady-state step for B ≥ 2 (B of one micro-batch; the spec's batch is not
    read): live bytes = α + β·B (a sharded rank's too, analytic.exact.sharded)."""
    config, setup = spec.model, spec.setup
    layout = (False, *head_layout(config.num_heads, config.kv_heads))

    def moment_totals(batch):
        step = spec.replace(batch_size=setup.micro_batches * batch)
        if setup.shard != "none":
            totals = sharded.moment_totals(programs, step)
            if totals is None:
                raise ValueError("a sharded rank outside the exact set's domain (foreach AdamW), or without its "
                                 "programs (analytic.exact.derivation.deriving_programs derives them on first use)")
            return totals
        phases = layout_phases(programs, sizes_of(step), config.positional, setup.optimizer, layout, moments=True)
        return np.concatenate([phases[name] for name in PHASES])
    at_two, at_three = moment_totals(2), moment_totals(3)
    return at_two - 2 * (at_three - at_two), at_three - at_two


def max_batch_size(spec: StepSpec, budget_bytes: int, programs: Programs | None = None) -> int:
    """The largest batch (of one micro-batch) whose exact steady-state peak fits in budget_bytes (0 if not even
    one sequence), from `programs` (the installed torch's by default, analytic.exact.source.installed); the
    spec's batch_size is not read."""
    programs = programs or installed()
    config, setup = spec.model, spec.setup
    why = outside_domain(config, programs.torch_version)
    if why is not None:
        raise ValueError(why)
    alpha, beta = peak_lines(programs, spec)
    growing = beta > 0
    best = np.min((budget_bytes - alpha[growing]) // beta[growing]) if growing.any() else np.inf
    if np.any(alpha[~growing] > budget_bytes):
        best = 0
    if best >= 2:
        return int(best) if np.isfinite(best) else 2**62
    one_each = spec.replace(batch_size=setup.micro_batches)
    if setup.shard != "none":
        one = sharded.evaluate_rank(programs, one_each, sizes_of(one_each))["peak_bytes"]
    else:
        one = step_figures(programs, sizes_of(one_each), config.positional, setup.optimizer)["peak_bytes"]
    return int(one <= budget_bytes)
