"""analytic.limits: below the bound the exact model's int64 figures equal its formula in Python integers (nothing
wraps); above it every command refuses the step in one line."""
from __future__ import annotations

import pytest

from analytic import exact
from analytic.exact.formula import formula_key, formulas, python_expression
from analytic.figures import flatten
from analytic.limits import LIMIT, figure_bound, too_large
from model import StepSpec, preset
from profiler.cli import main

TERMS = ("peak_bytes", "phases.backward.peak_bytes", "saved_activations_bytes", "flops.forward", "flops.backward",
         "flops_matmul.forward", "flops_matmul.backward")


def largest_batch(spec: StepSpec) -> int:
    """The largest batch whose figure_bound stays within LIMIT (the bound is increasing in B)."""
    low, high = 1, 2
    while figure_bound(spec.replace(batch_size=high)) <= LIMIT:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if figure_bound(spec.replace(batch_size=middle)) <= LIMIT else (low, middle)
    return low


@pytest.mark.parametrize("name", ["gpt2-xl", "llama2-7b"])
def test_the_largest_batch_within_the_bound_is_counted_exactly(name):
    spec = StepSpec(preset(name))
    batch = largest_batch(spec)
    at_edge = spec.replace(batch_size=batch)
    assert too_large(at_edge) is None and too_large(spec.replace(batch_size=batch + 1)) is not None
    key = formula_key(at_edge, at_batch=False)
    expressions = {term: python_expression(value) for term, value in formulas(key).items()}
    model = at_edge.model
    names = {"L": model.num_layers, "B": batch, "T": model.context_length, "D": model.d_model, "H": model.num_heads,
             "F": model.d_ff, "V": model.vocab_size, "G": model.kv_heads, "M": 0}
    exact_figures = flatten(exact.predict(at_edge))
    in_python = {term: eval(expressions[term], {"__builtins__": {}, "max": max}, names) for term in TERMS}  # noqa: S307
    assert {term: exact_figures[term] for term in TERMS} == in_python
    assert max(in_python.values()) < LIMIT  # the bound holds every figure


@pytest.mark.parametrize("argv", [["predict", "--batch-size", "300000000"], ["measure", "--batch-size", "10**30"],
                                  ["predict", "--context-length", str(10**25)],
                                  ["predict", "--num-layers", str(10**20)],
                                  ["predict", "--shard", "fsdp2", "--world-size", str(10**20)],
                                  ["max-batch", "--budget", "999999999999999999999GB"]])
def test_steps_past_the_bound_are_one_line(capsys, argv):
    argv = [part if part != "10**30" else str(10**30) for part in argv]
    assert main([argv[0], "--preset", "gpt2-xl", *argv[1:]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "2^62" in err and len(err) <= 121
