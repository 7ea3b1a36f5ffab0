"""The registry of formula sets: every set of closed-form predictions the tool grades against measurement.

A formula set is a module with
    NAME: str                    short unique name ("textbook", "seed_000", ..., "exact")
    DESCRIPTION: str             one line: whose accounting it is and its main choices
    predict(config, batch_size, optimizer="foreach") -> dict   figures (analytic.figures) it predicts
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
    "analytic.exact",
]


def formula_sets(names: list[str] | None = None) -> dict[str, ModuleType]:
    sets = {}
    for module_name in FORMULA_SET_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # a real import error inside an existing module
                raise
            continue  # not written yet
        sets[module.NAME] = module
    if names is not None:
        unknown = sorted(set(names) - set(sets))
        if unknown:
            raise ValueError(f"unknown formula set(s) {', '.join(unknown)}; known: {', '.join(sets)}")
        sets = {name: sets[name] for name in names}
    return sets


def predict(config: ModelConfig, batch_size: int, optimizer: str = "foreach",
            names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every formula set's figures for one configuration, by set name."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return {name: module.predict(config, batch_size, optimizer=optimizer)
            for name, module in formula_sets(names).items()}
