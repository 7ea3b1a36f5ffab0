"""analytic.published.korthikanti: Korthikanti et al. 2022's per-layer activation memory (Table 2) against the step
measured on meta, on the block it describes (GPT-2's, with dropout, in bf16), on one device and on one rank of a
tensor-parallel group of t with and without sequence parallelism (simulated on the fake process group). What the
paper leaves out is named to the byte: each LayerNorm's float32 mean and rstd (2 · 4·s·b bytes per norm, two norms;
CUDA's kernel, which a simulated rank runs too: model.cuda_kernels), split on the sequence with sequence
parallelism; with the fused kernels their float32 logsumexp (4·a·s·b, split over the heads; the efficient kernel
pads s to a multiple of 32); with sequence parallelism the inputs of the attention's and the MLP's first linears,
which torch's plan saves as all-gathered (2·s·b·h each, whole, where Megatron keeps them split, 2·s·b·h/t, and
gathers them again in backward); with full recomputation and sequence parallelism each layer's input is kept split
(2·s·b·h/t, where Table 2 says 2·s·b·h)."""
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


@pytest.mark.parametrize("attention, checkpointing", [("explicit", "none"), ("sdpa-flash", "none"),
                                                      ("explicit", "full")])
@pytest.mark.parametrize("t, sequence_parallel", [(2, False), (2, True), (4, True)])
def test_per_layer_of_a_tensor_parallel_rank(attention, checkpointing, t, sequence_parallel):
    """Table 2's tensor-parallel rows against rank 0 of a t-rank tensor-parallel group (one data-parallel rank)."""
    spec = StepSpec(preset("tiny"), batch_size=2).replace(
        arch="gpt2", dropout=0.1, dtype="bfloat16", attention=attention, checkpointing=checkpointing, num_layers=2,
        num_heads=4, d_model=64, d_ff=256, context_length=64, shard="fsdp2", world_size=t, tensor_parallel=t,
        sequence_parallel=sequence_parallel)
    s, b, h, a = 64, 2, 64, 4
    sequence = t if sequence_parallel else 1
    measured = measure(spec, "meta", count_flops=False).measured["saved_activations_per_layer_bytes"]
    if checkpointing == "full":
        left_out = 2 * s * b * h // sequence - 2 * s * b * h  # the layer's input kept split on the sequence
    else:
        left_out = 2 * (2 * 4 * s * b) // sequence  # two LayerNorms' float32 mean and rstd
        if attention != "explicit":
            left_out += 4 * a * s * b // t  # the fused kernel's float32 logsumexp, of the rank's heads
        if sequence_parallel:
            left_out += 2 * (2 * s * b * h - 2 * s * b * h // t)  # the two all-gathered inputs saved whole
    assert measured - korthikanti.per_layer_bytes(spec) == left_out
