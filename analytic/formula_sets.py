"""The registry of formula sets: every set of closed-form predictions the tool grades against measurement.

A formula set is a module with
    NAME: str                    short unique name ("textbook", "seed_000", ..., "exact")
    DESCRIPTION: str             one line: whose accounting it is and its main choices
    predict(config, batch_size, optimizer="foreach") -> dict   figures (analytic.figures) it predicts
and optionally max_batch_size(config, budget_bytes, optimizer="foreach") -> int; without one, max_batch_size()
below solves the set's own peak, which is then linear in B, from its predictions at B = 1 and B = 2; and
    SETUP: dict                  the setup it describes, as ModelConfig fields and values, a tuple where it
                                 describes several ({"checkpointing": "none", "attention": ("explicit",
                                 "sdpa-math")}); a set is graded only on points of its setup (describes()). None
                                 or absent: every setup.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from model.config import ModelConfig

FORMULA_SET_MODULES = [
    "analytic.textbook",
    "analytic.seeds.seed_000",
    "analytic.seeds.seed_001",
    "analytic.seeds.seed_002",
    "analytic.seeds.seed_003",
    "analytic.seeds.seed_004",
    "analytic.published.megatron",
    "analytic.exact",
]


def formula_sets(names: list[str] | None = None) -> dict[str, ModuleType]:
    """The registered sets by name (all of them, or `names` in that order); a set that fails to import is an
    error, never skipped."""
    sets = {}
    for module_name in FORMULA_SET_MODULES:
        module = importlib.import_module(module_name)
        sets[module.NAME] = module
    if names is not None:
        unknown = sorted(set(names) - set(sets))
        if unknown:
            raise ValueError(f"unknown formula set(s) {', '.join(unknown)}; known: {', '.join(sets)}")
        sets = {name: sets[name] for name in names}
    return sets


def describes(module: ModuleType, config: ModelConfig) -> bool:
    """Whether the set's declared SETUP matches the config (a set without one describes every setup)."""
    return all(getattr(config, field) in (value if isinstance(value, tuple) else (value,))
               for field, value in (getattr(module, "SETUP", None) or {}).items())


def setup_text(module: ModuleType) -> str:
    """The set's SETUP in words: 'dtype float32, attention explicit or sdpa-math', or 'every setup'."""
    setup = getattr(module, "SETUP", None) or {}
    return ", ".join(f"{field} {' or '.join(value) if isinstance(value, tuple) else value}"
                     for field, value in setup.items()) or "every setup"


def predict(config: ModelConfig, batch_size: int, optimizer: str = "foreach",
            names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every formula set's figures for one configuration, by set name."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return {name: module.predict(config, batch_size, optimizer=optimizer)
            for name, module in formula_sets(names).items()}


def max_batch_size(module: ModuleType, config: ModelConfig, budget_bytes: int, optimizer: str = "foreach") -> int | None:
    """The largest batch whose peak the formula set predicts within budget_bytes; None if it predicts no peak.

    A set with its own max_batch_size answers itself. Otherwise its peak must be a·B + b (the textbook and the
    seed answers are): a = peak(2) - peak(1), b = peak(1) - a, and B = floor((budget - b) / a), 0 if B = 1
    does not fit.
    """
    own = getattr(module, "max_batch_size", None)
    if own is not None:
        return own(config, budget_bytes, optimizer=optimizer)
    one = module.predict(config, 1, optimizer=optimizer).get("peak_bytes")
    if one is None:
        return None
    slope = module.predict(config, 2, optimizer=optimizer)["peak_bytes"] - one
    if slope <= 0:
        raise ValueError(f"formula set {module.NAME} predicts a peak that does not grow with the batch")
    return max(0, int((budget_bytes - (one - slope)) // slope))


def max_batch_sizes(config: ModelConfig, budget_bytes: int, optimizer: str = "foreach") -> dict[str, int | None]:
    """Every set's predicted maximum batch (max_batch_size above), None where a set does not describe the setup,
    predicts no peak or the configuration is outside its domain (the exact set: autocast, context length 1)."""
    predictions: dict[str, int | None] = {}
    for name, module in formula_sets().items():
        if not describes(module, config):
            predictions[name] = None
            continue
        try:
            predictions[name] = max_batch_size(module, config, budget_bytes, optimizer)
        except ValueError:
            predictions[name] = None
    return predictions
