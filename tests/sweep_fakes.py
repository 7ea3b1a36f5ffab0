"""Helpers for test_sweep, test_report and test_check: a tiny grid, fake measurements, formula sets made on the fly."""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

from analytic import formula_sets
from analytic.params import parameter_count

TINY_GRID = """
name = "tiny-test"
description = "tiny models on meta for the tests"
device = "meta"
optimizers = ["foreach"]

[base]
preset = "tiny"
batch_size = 2

[axes]
batch_size = [1, 2]
context_length = [16, 32]

[[points]]
preset = "tiny"
num_layers = 1
name = "tiny-1"
batch_sizes = [1]
optimizers = ["forloop"]
"""


def write_grid(folder: Path, text: str = TINY_GRID, name: str = "grid.toml") -> Path:
    path = Path(folder) / name
    path.write_text(text)
    return path


def fake_measure(spec, device="meta") -> dict:
    """A measurement-shaped dict in microseconds: params and a made-up peak."""
    config, batch_size = spec.model, spec.batch_size
    params = parameter_count(config)
    peak = 16 * params + 4 * batch_size * config.context_length * config.d_model * config.num_layers
    return {"device": device, "device_name": device, "torch_version": "fake", "dtype": spec.setup.dtype,
            "optimizer": spec.setup.optimizer, "date": "2000-01-01T00:00:00+00:00", "config": spec.flat(),
            "batch_size": batch_size, "measured": {"params": params, "peak_bytes": peak}}


def slow_measure(spec, device="meta") -> dict:
    time.sleep(0.3)
    return fake_measure(spec, device)


def _measured(spec):
    from profiler.measuring.measure import measure

    return measure(spec, "meta").measured


def _make_set(name: str, predict) -> types.ModuleType:
    module = types.ModuleType(f"sweep_fakes_{name}")
    module.NAME, module.DESCRIPTION, module.predict = name, f"test-only set {name}", predict
    sys.modules[module.__name__] = module
    return module


def register_test_sets(monkeypatch) -> None:
    """Replace the registry by two test-only sets: `measured` (the measurement itself, so exact by construction;
    also named like the textbook so the report's textbook columns have data) and `off` (its peaks 1 % high)."""
    def exact(spec):
        return _measured(spec)

    def off(spec):
        figures = _measured(spec)
        return {"params": figures["params"], "peak_bytes": int(figures["peak_bytes"] * 1.01),
                "phases": figures["phases"]}

    modules = [_make_set("textbook", exact), _make_set("off", off)]
    monkeypatch.setattr(formula_sets, "FORMULA_SET_MODULES", [m.__name__ for m in modules])
    for module in modules:
        monkeypatch.setitem(sys.modules, module.__name__, module)
