"""The compare step: a measurement (Measurement.to_dict(), or a sweep row) beside every formula set's predictions
for the same point, term by term. Measurements never carry predictions; they are made here, with today's formulas,
wherever a measurement is compared (measure's CLI, the sweep's report, the check gate)."""
from __future__ import annotations

from typing import Any

from analytic.figures import common_keys, flatten, model_flops, with_model_states
from analytic.formula_sets import describing, exact_set, predict
from analytic.hardware import training_days
from analytic.textbook import PROBLEM
from analytic.units import relative_error
from model.spec import StepSpec


def predictions(measurement: dict[str, Any], names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The figures of every formula set (or of `names`) that describes the measured setup
    (analytic.formula_sets.describes), for its configuration, batch size and optimizer: a set is never graded on
    a setup it does not claim to describe."""
    spec = StepSpec.from_row(measurement)
    return predict(spec, describing(spec, names))


def comparison_rows(measured: dict[str, Any], predicted: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (formula set, term) the set predicts: predicted, measured, relative error."""
    measured = with_model_states(measured)
    flat_measured = flatten(measured)
    rows = []
    for name, figures in predicted.items():
        figures = with_model_states(figures)
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
    spec = StepSpec.from_row(measurement).replace(batch_size=PROBLEM.batch_size, optimizer="foreach")
    flops = exact_set().predict(spec).get("flops")
    if not flops:
        return None
    return training_days(model_flops(flops), PROBLEM.steps, speed["peak_flops_per_second"], speed["mfu"])


# The families a formula set itemises: where it predicts one key of a family, a key of it that it leaves out
# counts as 0 (it "misses" what PyTorch holds there).
FAMILIES = ("categories_at_peak", "saved_activations_by_component", "model_states")
# The total each family itemises, graded alone where the set does not itemise it.
TOTAL_OF = {"saved_activations_by_component": "saved_activations_bytes", "model_states": "model_states_bytes",
            "categories_at_peak": "peak_bytes"}


def reconcile(predicted: dict[str, Any], measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a set's bytes differ from the measurement, largest difference first: per category at the peak,
    per saved component and per model state where the set itemises them, else the total it gives.
    Each item: term, predicted, measured, difference (predicted − measured: > 0 over-counts, < 0 misses)."""
    predicted, measured = with_model_states(predicted), with_model_states(measured)
    items = []
    for family in FAMILIES:
        mine, truth = predicted.get(family), measured.get(family)
        if not mine or not truth:
            continue
        for key in dict.fromkeys([*truth, *mine]):
            items.append({"term": f"{family}.{key}", "predicted": mine.get(key, 0), "measured": truth.get(key, 0)})
    itemised = {item["term"].split(".")[0] for item in items}
    for family, total in TOTAL_OF.items():
        if family not in itemised and total in predicted and total in measured:
            items.append({"term": total, "predicted": predicted[total], "measured": measured[total]})
    for item in items:
        item["difference"] = item["predicted"] - item["measured"]
    return sorted((item for item in items if item["difference"]), key=lambda item: -abs(item["difference"]))
