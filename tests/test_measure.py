"""The tracker and measure() on meta and CPU: exact agreement, sums, FlopCounterMode, MemTracker cross-check."""
import random

import pytest

from analytic.figures import flatten
from model import CATEGORIES, COMPONENTS, PHASES, StepSpec, preset
from model.step import build, make_batch, train_step
from profiler.measuring.measure import measure
from tests.memtracker import memtracker_peak


def random_specs(count, seed=0):
    rng = random.Random(seed)
    specs = []
    for _ in range(count):
        heads = rng.randint(1, 4)
        specs.append(StepSpec.of(vocab_size=rng.randint(2, 300), context_length=rng.randint(1, 24),
                                 num_layers=rng.randint(1, 3), d_model=heads * 2 * rng.randint(1, 6),
                                 num_heads=heads, d_ff=rng.choice([None, rng.randint(1, 50)]),
                                 positional=rng.choice(["learned", "rope", "none"]),
                                 batch_size=rng.randint(1, 3), optimizer=rng.choice(["foreach", "forloop"])))
    return specs


def byte_figures(measured):
    return {key: value for key, value in flatten(measured).items() if "flops" not in key}


@pytest.mark.parametrize("spec", [
    pytest.param(spec, marks=pytest.mark.slow if index >= 6 else ()) for index, spec in enumerate(random_specs(24))])
def test_meta_and_cpu_give_identical_bytes(spec):
    on_meta = measure(spec, "meta", count_flops=False).measured
    on_cpu = measure(spec, "cpu", count_flops=False).measured
    assert byte_figures(on_meta) == byte_figures(on_cpu)


@pytest.mark.parametrize("optimizer", ["foreach", "forloop"])
@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_memtracker_agrees_on_the_peak(optimizer, positional):
    spec = StepSpec(preset("tiny").replace(positional=positional), batch_size=2).replace(optimizer=optimizer)
    assert measure(spec, "meta", count_flops=False).measured["peak_bytes"] == memtracker_peak(spec)


@pytest.mark.parametrize("spec", random_specs(6, seed=1))
def test_categories_sum_to_the_live_total(spec):
    result = measure(spec, "meta", count_flops=False)
    measured = result.measured
    assert sum(measured["categories_at_peak"].values()) == measured["peak_bytes"]
    for step in (measured, measured["warmup"]):
        for phase in PHASES:
            figures = step["phases"][phase]
            assert sum(figures["categories_at_peak"].values()) == figures["peak_bytes"]
            assert figures["peak_bytes"] >= max(figures["start_bytes"], figures["end_bytes"])
    timeline = result.timeline
    totals = [sum(timeline[name][i] for name in CATEGORIES) for i in range(len(timeline["op_index"]))]
    assert max(totals) == measured["peak_bytes"]
    assert sum(measured["saved_activations_by_component"].values()) == measured["saved_activations_bytes"]
    assert set(measured["saved_activations_by_component"]) == set(COMPONENTS)
    per_layer = result.saved_activations_per_layer
    assert len(per_layer) == spec.model.num_layers


def test_saved_activations_by_component_match_autograd_for_one_layer():
    """Hand count for the explicit attention path (fp32, learned positions): bytes per layer."""
    config, B = preset("tiny"), 3
    T, D, H, F = config.context_length, config.d_model, config.num_heads, config.d_ff
    layer = measure(StepSpec(config, batch_size=B), "meta", count_flops=False).saved_activations_per_layer["1"]
    BTD = B * T * D * 4
    assert layer == {"norm1": 2 * BTD + B * T * 4,  # x and x·rsqrt (BTD each), rsqrt (BT)
                     "q_proj": BTD,  # the normalised input, shared by q, k and v projections: counted once
                     "scores": 2 * BTD,  # contiguous copies of q and kᵀ made for the batched matmul
                     "softmax": B * H * T * T * 4,  # its output only (also what weighted_sum saves)
                     "weighted_sum": BTD,  # contiguous copy of v
                     "out_proj": BTD,  # heads merged by .contiguous()
                     "norm2": 2 * BTD + B * T * 4, "w1": BTD, "silu": B * T * F * 4, "w2": B * T * F * 4}


def matmul_flops(config, B):
    T, L, D, F, V = (config.context_length, config.num_layers, config.d_model, config.d_ff, config.vocab_size)
    return 2 * B * T * (L * (4 * D * D + 2 * D * F) + D * V) + L * 4 * B * T * T * D


@pytest.mark.parametrize("spec", random_specs(4, seed=2) + [StepSpec(preset("mini"), batch_size=2)])
def test_flop_counter_equals_matmul_formula_and_backward_is_twice_forward(spec):
    flops = measure(spec, "meta").measured["flops_matmul"]
    assert flops["forward"] == matmul_flops(spec.model, spec.batch_size)
    assert flops["backward"] == 2 * flops["forward"]


def test_sdpa_flash_on_cpu_is_counted():
    """On CPU, sdpa-flash forces CPU's own flash kernel, which FlopCounterMode has no formula for (ours)."""
    explicit = preset("tiny")
    sdpa = StepSpec(explicit, batch_size=2).replace(dtype="bfloat16", attention="sdpa-flash")
    counted = measure(sdpa, "cpu").measured["flops_matmul"]
    assert counted["forward"] == matmul_flops(explicit, 2)  # flash attention forward: 4·B·H·T²·Dh, as QKᵀ + PV
    T, D, L = explicit.context_length, explicit.d_model, explicit.num_layers
    attention_forward = L * 4 * 2 * T * T * D
    assert counted["backward"] == 2 * (counted["forward"] - attention_forward) + 10 * attention_forward // 4


@pytest.mark.parametrize("optimizer, device", [("forloop", "meta"), ("foreach", "meta"), ("fused", "cpu")])
def test_adamw_flops_per_parameter(optimizer, device):
    """14 FLOPs per parameter under the convention, plus the step counters (+1 per tensor) where they are ops."""
    spec = StepSpec(preset("tiny"), batch_size=2).replace(optimizer=optimizer)
    measured = measure(spec, device).measured
    tensors = len(list(build(StepSpec(spec.model), "meta")[0].parameters()))
    extra = {"forloop": tensors, "foreach": tensors, "fused": tensors}[optimizer]
    assert measured["flops"]["optimizer"] == 14 * measured["params"] + extra


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="device must be one of"):
        measure(StepSpec(preset("tiny")), "tpu")
    with pytest.raises(ValueError, match="fused AdamW does not run on meta"):
        measure(StepSpec(preset("tiny")).replace(optimizer="fused"), "meta")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        measure(StepSpec(preset("tiny"), batch_size=0))


@pytest.mark.slow
def test_gpt2_xl_on_meta_peaks_in_the_optimizer_step():
    measured = measure(StepSpec(preset("gpt2-xl")), "meta").measured
    params = measured["params"]
    assert measured["peak_phase"] == "optimizer"
    at_peak = measured["categories_at_peak"]
    assert at_peak["parameters"] == at_peak["gradients"] == at_peak["optimizer_temporaries"] == 4 * params
    assert at_peak["optimizer_state"] == 8 * params


@pytest.mark.parametrize("optimizer", ["foreach", "forloop"])
def test_counting_flops_changes_no_byte(optimizer):
    spec = StepSpec(preset("tiny").replace(positional="rope"), batch_size=2).replace(optimizer=optimizer)
    counted = measure(spec, "meta", count_flops=True)
    uncounted = measure(spec, "meta", count_flops=False)
    assert byte_figures(counted.measured) == byte_figures(uncounted.measured)
    assert counted.timeline == uncounted.timeline


@pytest.mark.parametrize("optimizer, positional", [("foreach", "learned"), ("forloop", "rope")])
def test_flop_counter_mode_per_module_agrees_with_the_in_step_count(optimizer, positional):
    from profiler.measuring.flops import by_component, flop_counter_step, split_counts
    spec = StepSpec(preset("tiny").replace(positional=positional), batch_size=2).replace(optimizer=optimizer)
    model, adamw = build(spec, "meta")
    tokens, targets = make_batch(spec.model, spec.batch_size, "meta")
    train_step(model, adamw, tokens, targets, spec.setup)
    per_phase = flop_counter_step(model, adamw, tokens, targets, spec.setup)
    measured = measure(spec, "meta")
    for phase in PHASES:
        assert sum(per_phase[phase]["Global"].values()) == measured.measured["flops"][phase]
    assert split_counts(per_phase["forward"]["Global"])[0] == measured.measured["flops_matmul"]["forward"]
    forward_components = by_component(per_phase["forward"])
    assert {name: value for name, value in forward_components.items() if value and name != "other"} == \
        {name: value for name, value in measured.flops_by_component.items() if value}


@pytest.mark.parametrize("setup", [{}, {"checkpointing": "full"}, {"arch": "gpt2", "autocast": "bfloat16",
                                                                    "attention": "sdpa-flash"}])
def test_flops_alone_equal_the_full_measurements(setup):
    """measure_flops (no memory tracking) counts exactly what measure() counts."""
    from profiler.measuring.measure import measure_flops

    spec = StepSpec(preset("mini"), batch_size=2).replace(**setup)
    full = measure(spec, "meta").measured
    alone = measure_flops(spec, "meta")
    assert {key: alone[key] for key in ("params", "flops", "flops_matmul", "adamw_flops_per_param")} == \
        {key: full[key] for key in ("params", "flops", "flops_matmul", "adamw_flops_per_param")}
