"""The exact formula set against the tracker on meta: every measured figure it predicts, to the byte."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from analytic import exact
from analytic.exact.max_batch import max_batch_size
from analytic.figures import flatten
from analytic.units import parse_bytes
from model import StepSpec, preset
from profiler.measuring.measure import measure
from strategies import assume_exact_domain, step_specs


def mismatches(spec, device="meta"):
    measured = flatten(measure(spec, device).measured)
    predicted = flatten(exact.predict(spec))
    assert {key for key in measured if key in predicted} >= {
        "peak_bytes", "peak_phase", "phases.forward.peak_bytes", "phases.backward.peak_bytes",
        "phases.optimizer.peak_bytes", "warmup.peak_bytes", "saved_activations_bytes", "flops.forward",
        "flops.backward", "flops.optimizer", "flops_matmul.forward", "categories_at_peak.temporaries"}
    return {key: (predicted[key], value) for key, value in measured.items()
            if key in predicted and predicted[key] != value}


SPECS = step_specs(max_heads=25, max_head_pairs=64, max_vocab=50257, min_context=2, max_context=1024,
                   max_layers=4, max_d_ff=6400, dtypes=("float32", "bfloat16"),
                   checkpointings=("none", "full", "selective"), micro_batches=(1, 1, 2, 3),
                   zero_grads=("none", "zeros"),
                   attentions=("explicit", "explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient"),
                   autocasts=("none", "none", "bfloat16"), archs=("reference", "gpt2", "llama"))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPECS, st.integers(1, 32), st.sampled_from(["foreach", "forloop"]))
def test_exact_equals_measurement_on_meta(spec, micro_batch, optimizer):
    assume_exact_domain(spec)
    assert mismatches(spec.replace(batch_size=spec.setup.micro_batches * micro_batch, optimizer=optimizer)) == {}


@pytest.mark.parametrize("zero_grad", ["none", "zeros"])
def test_micro_batches_measured_and_predicted(zero_grad):
    """Gradients exist from micro-batch 2 on (from 1 on with zero_grad 'zeros'): micro-batch 1's forward starts
    lower by the gradients (set_to_none) and every later one repeats micro-batch 2; each accumulation adds one
    FLOP per parameter to backward."""
    spec = StepSpec.of(vocab_size=97, context_length=12, num_layers=2, d_model=24, num_heads=3, d_ff=50,
                       micro_batches=3, zero_grad=zero_grad, batch_size=6)
    measured = measure(spec).measured
    assert mismatches(spec) == {}
    windows = measured["micro_batches"]
    assert windows["2"] == windows["3"]
    gradients = 4 * measured["params"]
    first, later = windows["1"]["forward"]["start_bytes"], windows["2"]["forward"]["start_bytes"]
    assert later - first == 4 + (gradients if zero_grad == "none" else 0)  # and the previous loss, fp32 0-dim
    single = measure(spec.replace(micro_batches=1, batch_size=2)).measured["flops"]  # accumulates once with 'zeros'
    assert measured["flops"]["backward"] - 3 * single["backward"] == (
        2 * measured["params"] if zero_grad == "none" else 0)


@pytest.mark.slow
@pytest.mark.parametrize("name, batch, checkpointing", [("gpt2-small", 64, "none"), ("gpt2-xl", 1, "none"),
                                                       ("gpt2-xl", 7, "none"), ("gpt2-xl", 8, "full"),
                                                       ("gpt2-small", 3, "selective"), ("hf-gpt2-xl", 2, "none"),
                                                       ("hf-gpt2", 3, "selective"), ("tinyllama-1.1b", 1, "full")])
def test_exact_on_gpt2_sizes(name, batch, checkpointing):
    assert mismatches(StepSpec(preset(name), batch_size=batch).replace(checkpointing=checkpointing)) == {}


@pytest.mark.parametrize("checkpointing", ["full", "selective"])
@pytest.mark.parametrize("arch", ["reference", "gpt2"])
def test_recomputation_is_the_backward_flops_checkpointing_adds(checkpointing, arch):
    """backward(checkpointed) − backward(none) is what flops.recompute measures and the exact set predicts: the
    blocks' forward again, less what non-reentrant checkpointing stops before (the last residual add, and W2
    unless gpt2's dropout follows it) and, for selective, less the kept projections."""
    spec = StepSpec.of(vocab_size=97, context_length=12, num_layers=3, d_model=24, num_heads=3, d_ff=50,
                       arch=arch, batch_size=2)
    plain = measure(spec).measured["flops"]
    checkpointed = measure(spec.replace(checkpointing=checkpointing)).measured["flops"]
    added = checkpointed["backward"] - plain["backward"]
    assert added == checkpointed["recompute"] > 0 and plain["recompute"] == 0
    assert added == exact.predict(spec.replace(checkpointing=checkpointing))["flops"]["recompute"]
    assert checkpointed["forward"] == plain["forward"]


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_exact_fused_on_cpu(positional):
    spec = StepSpec(preset("tiny").replace(positional=positional), batch_size=3).replace(optimizer="fused")
    assert mismatches(spec, "cpu") == {}


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["80GB", "80GiB", "40GB"])
def test_max_batch_solved_from_the_closed_form_matches_measured_peaks(budget):
    spec, budget_bytes = StepSpec(preset("gpt2-xl")), parse_bytes(budget)
    best = max_batch_size(spec, budget_bytes)

    def peak(batch):
        return measure(spec.replace(batch_size=batch), "meta", count_flops=False).measured["peak_bytes"]

    assert best >= 1 and peak(best) <= budget_bytes < peak(best + 1)


def test_max_batch_is_zero_when_nothing_fits():
    assert max_batch_size(StepSpec(preset("gpt2-xl")), parse_bytes("20GB")) == 0


def test_vectorised_over_batch_sizes():
    spec = StepSpec(preset("gpt2-xl"))
    vector = exact.evaluate(spec.replace(batch_size=np.arange(1, 65)))["peak_bytes"]
    assert [exact.predict(spec.replace(batch_size=b))["peak_bytes"] for b in (1, 17, 64)] == list(vector[[0, 16, 63]])


@pytest.mark.parametrize("batch, heads", [(1, 3), (2, 1), (1, 1)])
@pytest.mark.parametrize("arch, positional", [("reference", "learned"), ("reference", "rope"), ("gpt2", "learned"),
                                              ("llama", "rope")])
def test_exact_on_degenerate_layouts(batch, heads, arch, positional):
    spec = StepSpec.of(vocab_size=50, context_length=9, num_layers=2, d_model=heads * 4, num_heads=heads,
                       positional=positional, arch=arch, batch_size=batch)
    assert mismatches(spec) == {}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("heads, kv_heads", [(6, 2), (4, 1)])  # grouped-query and multi-query attention
@pytest.mark.parametrize("attention", ["explicit", "sdpa-efficient"])
def test_exact_on_grouped_query_layouts(batch, heads, kv_heads, attention):
    spec = StepSpec.of(vocab_size=50, context_length=9, num_layers=2, d_model=heads * 8, num_heads=heads,
                       kv_heads=kv_heads, arch="llama", attention=attention, batch_size=batch)
    assert mismatches(spec) == {}


def test_context_length_one_is_outside_the_exact_domain():
    spec = StepSpec(preset("tiny").replace(context_length=1), batch_size=2)
    assert set(exact.predict(spec)) == {"params"}
    with pytest.raises(ValueError, match="context_length >= 2"):
        max_batch_size(spec, parse_bytes("1GB"))


@pytest.mark.slow
def test_committed_programs_match_a_fresh_derivation():
    """analytic/exact/derived.json.gz is what tools/derive_programs.py derives from the installed torch: the AdamW
    programs of every implementation for the reference block and foreach's for each other parameter layout, and
    the general layout class of each arch's attention options (the whole file takes 15 minutes: `python
    tools/derive_programs.py --check`; every class is checked against measurement by the tests above)."""
    from analytic.exact.derivation.derive import class_keys, derive
    from analytic.exact.source import shipped
    from model.config import ARCH_POSITIONAL

    keys = [key for key in class_keys() if key.checkpointing == "none" and not any(key.layout)
            and key.positional == ARCH_POSITIONAL[key.arch][0] and key.dtypes in ("any", "fp32", "16-bit")
            and (key.attention == "explicit" or key.arch == "reference")]
    keys += [key for key in class_keys() if (key.arch, key.attention, key.dtypes, key.checkpointing) ==  # autocast's
             ("llama", "sdpa-efficient", "amp-bf16", "full") and not any(key.layout)]  # SDPA under checkpointing
    optimizers = [key for key in shipped().found["optimizers"]
                  if key[:2] == ("reference", "learned") or key[3] == "foreach"]
    fresh = derive(keys, optimizers)
    assert fresh["optimizers"] == {key: shipped().adamw(key) for key in optimizers}
    assert fresh["classes"] == {key: shipped().layout_class(key) for key in keys}


def test_vectorised_over_arrays_of_configs():
    rng = np.random.default_rng(0)
    heads = rng.integers(1, 9, 40)
    sizes = dict(vocab_size=rng.integers(2, 60000, 40), context_length=rng.integers(2, 2048, 40),
                 num_layers=rng.integers(1, 60, 40), d_model=heads * 2 * rng.integers(1, 100, 40), num_heads=heads,
                 d_ff=rng.integers(1, 20000, 40), batch_size=rng.integers(1, 64, 40))
    for optimizer in ("foreach", "forloop"):
        vector = exact.evaluate_arrays(optimizer=optimizer, positional="rope", **sizes)
        for i in range(40):
            one = exact.predict(StepSpec.of(**{name: int(values[i]) for name, values in sizes.items()},
                                            positional="rope", optimizer=optimizer))
            assert (vector["peak_bytes"][i], vector["peak_phase"][i], vector["flops"]["backward"][i]) == \
                (one["peak_bytes"], one["peak_phase"], one["flops"]["backward"])
