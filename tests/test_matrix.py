"""Which formula is right where: setups, the matrix of errors and the reconciliation, on figures built by hand
(the report test runs them on a measured sweep)."""
import pandas as pd
import pytest

from profiler.reports.compare import reconcile
from profiler.reports.matrix import describe, matrix, matrix_view, reconciliation, setup_label

MEASURED = {"peak_bytes": 100, "categories_at_peak": {"parameters": 40, "gradients": 0, "temporaries": 60},
            "saved_activations_bytes": 30, "saved_activations_by_component": {"w1": 20, "lm_head": 10},
            "phases": {"optimizer": {"categories_at_peak": {"parameters": 40, "gradients": 40,
                                                            "optimizer_state": 80, "temporaries": 0}}}}


def test_reconcile_itemised_families_count_what_a_set_leaves_out_as_missed():
    predicted = {"peak_bytes": 90, "categories_at_peak": {"parameters": 40, "gradients": 40, "saved_activations": 10},
                 "saved_activations_by_component": {"w1": 20, "scores": 5}}
    items = {item["term"]: item["difference"] for item in reconcile(predicted, MEASURED)}
    assert items == {"categories_at_peak.temporaries": -60, "categories_at_peak.gradients": 40,
                     "categories_at_peak.saved_activations": 10, "saved_activations_by_component.lm_head": -10,
                     "saved_activations_by_component.scores": 5}
    assert list(items)[0] == "categories_at_peak.temporaries"  # largest first
    assert "peak_bytes" not in items  # itemised: the categories say where the peak's error is


def test_reconcile_grades_totals_where_a_set_does_not_itemise_and_derives_model_states():
    predicted = {"peak_bytes": 150, "saved_activations_bytes": 36,
                 "model_states": {"parameters": 20, "gradients": 20, "optimizer_state": 120}}
    items = {item["term"]: item["difference"] for item in reconcile(predicted, MEASURED)}
    assert items == {"peak_bytes": 50, "saved_activations_bytes": 6, "model_states.parameters": -20,
                     "model_states.gradients": -20, "model_states.optimizer_state": 40}


def test_describe_says_misses_counts_and_by_how_much():
    assert describe({"term": "categories_at_peak.optimizer_temporaries", "predicted": 0, "measured": 3 * 2**30,
                     "difference": -3 * 2**30}) == "misses optimizer temporaries at the peak (3.00 GiB)"
    assert describe({"term": "saved_activations_by_component.scores", "predicted": 2**20, "measured": 0,
                     "difference": 2**20}) == "counts saved scores, where PyTorch holds none (1.00 MiB)"
    assert describe({"term": "model_states.gradients", "predicted": 2 * 2**20, "measured": 4 * 2**20,
                     "difference": -2 * 2**20}) == "under-counts gradients (model states) by 2.00 MiB"


def test_setup_label_names_block_precision_kernel_and_what_is_used():
    assert setup_label({"arch": "gpt2", "dtype": "float32", "autocast": "bfloat16", "attention": "sdpa-flash",
                        "checkpointing": "full", "micro_batches": 2}) == \
        "gpt2 · amp bf16 · sdpa-flash · full ckpt · 2 micro-batches"
    assert setup_label({"arch": "reference", "dtype": "bfloat16", "autocast": "none", "attention": "explicit",
                        "checkpointing": "none", "micro_batches": 1}) == "reference · bf16 · explicit"


def test_matrix_takes_median_and_worst_per_set_and_setup():
    table = pd.DataFrame({"key": ["a", "b", "c", "a"], "setup": ["s1", "s1", "s1", "s1"],
                          "formula_set": ["x", "x", "x", "y"], "term": ["peak_bytes"] * 4,
                          "relative_error": [0.1, -0.3, 0.2, 0.0]})
    long = matrix(table)
    x = long[long["formula set"] == "x"].iloc[0]
    assert (x["points"], x["median"], x["worst"]) == (3, pytest.approx(0.2), pytest.approx(0.3))
    view = matrix_view(long, "peak")
    assert list(view.columns) == ["setup", "x", "y"] and view.loc[0, "x"] == "20 % / 30 %"
    assert matrix_view(long, "model states").empty


def test_reconciliation_picks_each_setups_largest_point():
    config = {"arch": "reference", "dtype": "float32", "autocast": "none", "attention": "explicit",
              "checkpointing": "none", "micro_batches": 1}
    small = {"outcome": "ok", "key": "small", "config": config, "measured": {**MEASURED, "peak_bytes": 10},
             "predicted": {"x": {"peak_bytes": 11}}}
    large = {"outcome": "ok", "key": "large", "config": config, "measured": MEASURED,
             "predicted": {"x": {"peak_bytes": 80}}}
    table = reconciliation([small, large])
    assert list(table["point"]) == ["large"] and table.loc[0, "peak error"] == pytest.approx(-0.2)
    assert table.loc[0, "largest differences"] == "under-counts peak by 20 B"
