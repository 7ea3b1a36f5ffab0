"""The printed formula (`formula --json`: Python expressions over L, B, T, D, H, F, V and M), evaluated at random
sizes, equals what is measured on meta; max batch from the printed closed form is the measured one."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from analytic.exact.formula import FormulaKey, document, formulas, python_expression, saved_by_component
from analytic.figures import flatten
from model import LAYER_COMPONENTS, ModelConfig, StepSpec
from profiler.cli import main
from profiler.measuring.measure import measure
from strategies import assume_exact_domain

TERMS = ("params", "peak_bytes", "phases.forward.peak_bytes", "phases.backward.peak_bytes",
         "phases.optimizer.peak_bytes", "saved_activations_bytes", "flops.forward", "flops.backward",
         "flops.optimizer", "flops.recompute", "flops_matmul.forward", "flops_matmul.backward")


def evaluate(text: str, config: ModelConfig, batch: int, budget: int = 0) -> int:
    """A printed expression at the config's sizes: Python with max() as the one function."""
    names = {"L": config.num_layers, "B": batch, "T": config.context_length, "D": config.d_model,
             "H": config.num_heads, "F": config.d_ff, "V": config.vocab_size, "G": config.kv_heads, "M": budget}
    return eval(text, {"__builtins__": {}, "max": max}, names)  # noqa: S307


def printed(setup: FormulaKey, domain: str | None = None) -> dict[str, str]:
    """The expressions `formula --json` prints: the general layout's, or a degenerate layout's."""
    if domain is None:  # the general layout alone, without building the three others
        return {key: python_expression(value) for key, value in formulas(setup).items()}
    return flatten(document(setup)["layouts"][domain])


@st.composite
def sizes(draw, positional, dtype, checkpointing, micro_batches=1, zero_grad="none", attention="explicit",
          autocast="none"):
    """A step spec and the batch of one micro-batch (B in the formulas; the spec's is micro_batches times it)."""
    heads = draw(st.integers(2, 6))
    unit = 8 if attention in ("sdpa-flash", "sdpa-efficient") else 2
    batch = draw(st.integers(2, 9))
    return (StepSpec.of(vocab_size=draw(st.integers(2, 400)), context_length=draw(st.integers(2, 40)),
                        num_layers=draw(st.integers(1, 3)), d_model=heads * unit * draw(st.integers(1, 6)),
                        num_heads=heads, d_ff=draw(st.integers(1, 100)), positional=positional, dtype=dtype,
                        checkpointing=checkpointing, micro_batches=micro_batches, zero_grad=zero_grad,
                        attention=attention, autocast=autocast, batch_size=micro_batches * batch),
            batch)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["foreach", "forloop"])
@pytest.mark.parametrize("positional", ["learned", "rope", "none"])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(["float32", "bfloat16"]),
       checkpointing=st.sampled_from(["none", "full", "selective"]), micro_batches=st.sampled_from([1, 2, 3]),
       zero_grad=st.sampled_from(["none", "zeros"]),
       attention=st.sampled_from(["explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient"]),
       autocast=st.sampled_from(["none", "none", "bfloat16"]))
def test_printed_formula_equals_the_measurement(positional, optimizer, data, dtype, checkpointing, micro_batches,
                                                zero_grad, attention, autocast):
    dtype = "float32" if autocast != "none" else "bfloat16" if attention == "sdpa-flash" else dtype
    spec, batch = data.draw(sizes(positional, dtype, checkpointing, micro_batches, zero_grad, attention, autocast))
    assume_exact_domain(spec)
    config = spec.model
    setup = FormulaKey(positional, optimizer, dtype, checkpointing=checkpointing, micro_batches=micro_batches,
                       zero_grad=zero_grad, attention=attention, autocast=autocast)
    expressions = printed(setup)
    measured = flatten(measure(spec.replace(optimizer=optimizer), "meta").measured)
    assert {term: evaluate(expressions[term], config, batch) for term in TERMS} == \
           {term: measured[term] for term in TERMS}
    # explain's derived column: what each component saves, per layer for the block's components
    derived = saved_by_component(setup)
    for name, expression in derived.items():
        layers = config.num_layers if name in LAYER_COMPONENTS else 1
        assert layers * evaluate(python_expression(expression), config, batch) == \
               measured[f"saved_activations_by_component.{name}"], name


@pytest.mark.parametrize("spec", [
    StepSpec.of(vocab_size=53, context_length=9, num_layers=3, d_model=24, num_heads=3, d_ff=40, arch="gpt2",
                batch_size=3),
    StepSpec.of(vocab_size=53, context_length=9, num_layers=3, d_model=48, num_heads=6, kv_heads=2, d_ff=40,
                arch="llama", dtype="bfloat16", checkpointing="full", batch_size=3),
    StepSpec.of(vocab_size=53, context_length=9, num_layers=2, d_model=32, num_heads=4, kv_heads=1, arch="llama",
                dtype="bfloat16", checkpointing="full", attention="sdpa-flash", batch_size=3)],
    ids=["gpt2", "llama-gqa", "mqa"])
def test_printed_formula_of_each_arch_equals_the_measurement(spec):
    """GPT-2's block with dropout; Llama's with grouped- and multi-query attention (G in the formulas), full
    checkpointing and bf16, whose programs have a segment run L − 1 times (the printed domain says L >= 2)."""
    from analytic.exact.formula import formula_key
    setup = formula_key(spec, at_batch=False)
    assert setup.domain().endswith("L >= 2") == (spec.setup.checkpointing == "full")
    expressions = printed(setup)
    measured = flatten(measure(spec, "meta").measured)
    assert {term: evaluate(expressions[term], spec.model, 3) for term in TERMS} == \
        {term: measured[term] for term in TERMS}


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_printed_max_batch_is_the_measured_one(positional):
    config = ModelConfig(vocab_size=97, context_length=16, num_layers=2, d_model=24, num_heads=3,
                         positional=positional)
    peak = {b: measure(StepSpec(config, batch_size=b), "meta", count_flops=False).measured["peak_bytes"]
            for b in (3, 4)}
    expression = printed(FormulaKey(positional))["max_batch"]
    assert evaluate(expression, config, 0, budget=peak[3]) == 3  # the peak at 3 fits exactly
    assert evaluate(expression, config, 0, budget=peak[4] - 1) == 3  # one byte short of batch 4


@pytest.mark.parametrize("batch, heads, domain", [(1, 3, "B == 1, H >= 2, T >= 2"), (3, 1, "B >= 2, H == 1, T >= 2"),
                                                  (1, 1, "B == 1, H == 1, T >= 2")])
def test_degenerate_layouts_print_their_own_formula(batch, heads, domain):
    config = ModelConfig(vocab_size=61, context_length=11, num_layers=2, d_model=heads * 6, num_heads=heads,
                         positional="rope")
    expressions = printed(FormulaKey("rope"), domain)
    measured = flatten(measure(StepSpec(config, batch_size=batch), "meta").measured)
    for term in ("peak_bytes", "phases.backward.peak_bytes", "saved_activations_bytes"):
        assert evaluate(expressions[term], config, batch) == measured[term], term


def test_json_uses_only_the_documented_syntax(capsys):
    assert main(["formula", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["domain"] == "B >= 2, H >= 2, T >= 2" and doc["setup"]["bytes_per_element"] == 4
    for key, text in flatten(doc).items():
        if key.startswith(("setup.", "symbols.", "domain", "derived_on_torch")):
            continue
        assert set(text) <= set("LBTDHFVM0123456789+-*/() ,max"), (key, text)
        assert "/" not in text.replace("//", ""), (key, text)  # integer division only


def test_text_and_latex(capsys):
    assert main(["formula", "--preset", "gpt2-xl", "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert "saved activations, one layer" in out and "B·(4·H·T² + 40·D·T + 8·F·T + 8·T)" in out
    assert "optimizer, after the blocks, after allocation 2 of 2 (+opt:gVD)" in out and "<- the highest" in out
    assert "[gpt2-xl, M = 80GB: 5]" in out  # max batch from the closed form, as measured (test_exact)
    assert main(["formula", "--latex", "--optimizer", "forloop"]) == 0
    assert "\\max" in capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 120  # wrapped, each value in brackets whole
    assert all(line.count("[") == line.count("]") for line in lines)
    assert main(["formula", "--preset", "gpt2-xl", "--batch-size", "1", "--wide"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) > 120


@pytest.mark.parametrize("argv, message", [
    (["formula", "--attention", "sdpa-flash", "--dtype", "float32", "--preset", "tiny"], "16-bit dtypes"),
    (["formula", "--preset", "tiny", "--context-length", "1"], "context_length >= 2"),
])
def test_outside_the_derived_domain_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
