"""The five seed answers to the adamwAccounting problem, one module each (seed_000 ... seed_004).

Each module encodes its answer as written, generalised to any config (analytic.seeds.common.SeedFormulas), and
records what the answer states for GPT-2 XL:
    NAME, SEED_FILE, DESCRIPTION      names (SEED_FILE: the answer's file in shared/seeds, without .txt)
    FORMULAS                          its formulas; predict = FORMULAS.predict, recompute = FORMULAS.recompute
    STATED                            the GPT-2 XL figures its text states (quotes, each with the line it quotes)
    REASONS                           why a stated figure does not follow, where the cause is in its text
    NOTES                             its choices and mistakes that do not break its own arithmetic
"""
from __future__ import annotations

import importlib
from types import ModuleType

SEED_MODULES = tuple(f"analytic.seeds.seed_{i:03d}" for i in range(5))


def seed_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in SEED_MODULES]
