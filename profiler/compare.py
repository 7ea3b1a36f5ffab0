"""Predicted against measured, term by term: the rows that every table, report and gate is built from."""
from __future__ import annotations

from typing import Any

from analytic.figures import common_keys, flatten
from analytic.units import relative_error


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
