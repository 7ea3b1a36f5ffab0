"""Maximum batch size in a memory budget, solved from the closed form (no search).

Every moment of the step is linear in B (activations scale with B, the rest does not), and the step's peak is
the highest of a fixed set of moments: peak(B) = max_k (α_k + β_k·B), convex and piecewise linear. So
peak(B) ≤ budget ⇔ α_k + β_k·B ≤ budget for every k, and the largest such B is min over β_k > 0 of
floor((budget − α_k) / β_k) — 0 when some moment exceeds the budget even without activations (α_k > budget
with β_k = 0), or when B = 1 does not fit. α_k and β_k are read off the exact moments at B = 0 and B = 1.
"""
from __future__ import annotations

import numpy as np

from analytic.exact.memory import step_phases
from analytic.exact.sizes import sizes_of
from model.config import ModelConfig
from model.vocabulary import PHASES


def peak_lines(config: ModelConfig, optimizer: str = "foreach") -> tuple[np.ndarray, np.ndarray]:
    """(α, β) of every moment of the steady-state step: live bytes = α + β·B."""
    def moment_totals(batch):
        sizes = sizes_of(config, batch)
        phases = step_phases(sizes, config.positional, optimizer, moments=True)
        return np.concatenate([phases[name] for name in PHASES])
    at_zero, at_one = moment_totals(0), moment_totals(1)
    return at_zero, at_one - at_zero


def max_batch_size(config: ModelConfig, budget_bytes: int, optimizer: str = "foreach") -> int:
    if config.attention != "explicit":
        raise ValueError("the exact formula set models explicit attention only")
    alpha, beta = peak_lines(config, optimizer)
    if np.any(alpha[beta == 0] > budget_bytes):
        return 0
    growing = beta > 0
    return int(max(0, np.min((budget_bytes - alpha[growing]) // beta[growing])))
