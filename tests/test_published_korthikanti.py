"""analytic.published.korthikanti: Korthikanti et al. 2022's per-layer activation memory (Table 2 at t = 1) against
the step measured on meta, on the block it describes (GPT-2's, with dropout, in bf16). What the paper leaves out is
named to the byte: each LayerNorm's float32 mean and rstd (2 · 4·s·b bytes per norm, two norms) and, with the
fused kernels, their float32 logsumexp (4·a·s·b; the efficient kernel pads s to a multiple of 32)."""
import pytest

from analytic.published import korthikanti
from model.config import preset
from model.spec import StepSpec
from profiler.measuring.measure import measure


def test_equation_1():
    """sbh(34 + 5as/h): 11sbh + 5as²b for attention, 19sbh for the MLP, 4sbh for the two layer norms."""
    s, h, a, b = 1024, 1600, 25, 2
    spec = StepSpec(preset("gpt2-xl"), batch_size=b).replace(arch="gpt2", dtype="bfloat16")  # s 1024, h 1600, a 25
    assert korthikanti.per_layer_bytes(spec) == (11 + 19 + 4) * s * b * h + 5 * a * s * s * b
    assert korthikanti.per_layer_bytes(spec.replace(attention="sdpa-flash")) == 34 * s * b * h
    assert korthikanti.per_layer_bytes(spec.replace(checkpointing="full")) == 2 * s * b * h
    assert korthikanti.predict(spec)["saved_activations_bytes"] == 48 * korthikanti.per_layer_bytes(spec)


@pytest.mark.parametrize("attention, checkpointing", [("explicit", "none"), ("sdpa-flash", "none"),
                                                      ("sdpa-efficient", "none"), ("explicit", "full")])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_per_layer_against_the_measured_step(attention, checkpointing, batch_size):
    spec = StepSpec(preset("tiny"), batch_size=batch_size).replace(
        arch="gpt2", dropout=0.1, dtype="bfloat16", attention=attention, checkpointing=checkpointing, num_layers=2,
        num_heads=2, context_length=64)
    s, a, b = spec.model.context_length, spec.model.num_heads, batch_size
    measured = measure(spec, "meta", count_flops=False).measured["saved_activations_per_layer_bytes"]
    left_out = 0
    if checkpointing == "none":
        left_out = 2 * (2 * 4 * s * b)  # two LayerNorms' float32 mean and rstd
        if attention != "explicit":
            left_out += 4 * a * s * b  # the fused kernel's float32 logsumexp
    assert measured - korthikanti.per_layer_bytes(spec) == left_out
