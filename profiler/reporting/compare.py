"""The compare step: a measurement (Measurement.to_dict(), or a sweep row) beside every formula set's predictions
for the same point, term by term. Measurements never carry predictions; they are made here, with today's formulas,
wherever a measurement is compared (measure's CLI, the sweep's report, the check gate)."""
from __future__ import annotations

from typing import Any

from analytic import exact
from analytic.figures import common_keys, flatten, model_flops
from analytic.formula_sets import describes, formula_sets, predict
from analytic.hardware import training_days
from analytic.textbook import PROBLEM
from analytic.units import relative_error
from model.config import ModelConfig


def predictions(measurement: dict[str, Any], names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The figures of every formula set (or of `names`) that describes the measured setup
    (analytic.formula_sets.describes), for its configuration, batch size and optimizer: a set is never graded on
    a setup it does not claim to describe."""
    config = ModelConfig(**measurement["config"])
    chosen = [name for name, module in formula_sets(names).items() if describes(module, config)]
    return predict(config, measurement["batch_size"], measurement["optimizer"], chosen)


def comparison_rows(measured: dict[str, Any], predicted: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (formula set, term) the set predicts: predicted, measured, relative error."""
    flat_measured = flatten(measured)
    rows = []
    for name, figures in predicted.items():
        flat_predicted = flatten(figures)
        for key in common_keys(figures, measured):
            rows.append({"formula_set": name, "term": key, "predicted": flat_predicted[key],
                         "measured": flat_measured[key],
                         "relative_error": relative_error(flat_predicted[key], flat_measured[key])})
    return rows


def training_days_at_measured_mfu(measurement: dict[str, Any]) -> float | None:
    """The problem's run (analytic.textbook.PROBLEM: its steps of its batch) in days at the MFU a CUDA
    measurement achieved, with the run's FLOPs from the exact formula set; None without a measured MFU."""
    speed = measurement["measured"].get("speed") or {}
    if not speed.get("mfu"):
        return None
    flops = exact.predict(ModelConfig(**measurement["config"]), PROBLEM.batch_size).get("flops")
    if not flops:
        return None
    return training_days(model_flops(flops), PROBLEM.steps, speed["peak_flops_per_second"], speed["mfu"])
