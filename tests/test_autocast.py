"""Mixed precision on meta: the autocast emulation (model.autocast) with CPU's policy gives, byte for byte, what
real torch.autocast("cpu") gives on CPU tensors; with CUDA's policy it is what CUDA runs (checked on a GPU)."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from analytic import exact
from analytic.figures import flatten
from model import StepSpec, preset
from model.autocast import AutocastEmulation
from profiler.cli import main
from profiler.measuring.measure import measure
from strategies import step_specs

AMP_SPECS = step_specs(max_heads=3, max_head_pairs=4, max_vocab=120, min_context=2, max_context=12,
                       max_layers=2, max_d_ff=40, checkpointings=("none", "full", "selective"),
                       micro_batches=(1, 2), zero_grads=("none", "zeros"), attentions=("explicit", "sdpa-math"))


def differences(spec):
    emulated = flatten(measure(spec, "meta", autocast_policy="cpu").measured)
    real = flatten(measure(spec, "cpu").measured)
    assert len(real) > 30
    return {key: (emulated.get(key), value) for key, value in real.items() if emulated.get(key) != value}


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(AMP_SPECS, st.integers(1, 3))
def test_cpu_policy_emulation_equals_real_cpu_autocast(spec, micro_batch):
    """Every figure (phase peaks, starts and ends, categories at each peak, saved activations by component,
    FLOPs) of the emulated step on meta equals real CPU autocast's on CPU."""
    spec = spec.replace(autocast="bfloat16", batch_size=spec.setup.micro_batches * micro_batch)
    assert differences(spec) == {}


def test_selective_checkpointing_under_autocast():
    """The recomputation's context lives as long as the block's frame, as torch.utils.checkpoint holds it: selective
    checkpointing's cached output of the block's last matmul, which the early-stopped recomputation never reaches,
    stays alive to the end of the block's backward (an emulation that dropped it early held one B·T·D less)."""
    spec = StepSpec.of(vocab_size=97, context_length=12, num_layers=1, d_model=24, num_heads=3, d_ff=50,
                       autocast="bfloat16", checkpointing="selective", batch_size=2)
    assert differences(spec) == {}


def test_cuda_policy_runs_what_cuda_autocast_runs():
    """CUDA's rules differ from CPU's where the lists differ: pow and rsqrt (RMSNorm) and softmax run in fp32 on
    CUDA, in bf16 on CPU; cross_entropy decomposes on CUDA (bf16 log-softmax, fp32 nll_loss) but is cast to fp32
    whole on CPU. Weights are cast once per forward either way."""
    x = torch.empty(2, 3, 8, device="meta", requires_grad=True) * 1  # an activation, not a leaf
    weight = torch.empty(8, 8, device="meta", requires_grad=True)
    with AutocastEmulation(torch.bfloat16, "cuda") as cuda:
        first, second = torch.nn.functional.linear(x, weight), torch.nn.functional.linear(x, weight)
        assert first.dtype == second.dtype == torch.bfloat16 and len(cuda.cache) == 1
        assert torch.rsqrt(first).dtype == torch.float32 and first.pow(2).dtype == torch.float32
        assert torch.softmax(first, -1).dtype == torch.float32
    assert not cuda.cache  # cleared as the region ends
    with AutocastEmulation(torch.bfloat16, "cpu"):
        first = torch.nn.functional.linear(x, weight)
        assert torch.rsqrt(first).dtype == torch.bfloat16 and torch.softmax(first, -1).dtype == torch.bfloat16


@pytest.mark.slow
def test_amp_is_measured_and_predicted_exactly(capsys):
    spec = StepSpec(preset("tiny"), batch_size=2).replace(autocast="bfloat16")
    measured = measure(spec, "meta").measured
    plain = measure(StepSpec(preset("tiny"), batch_size=2), "meta").measured
    predicted = flatten(exact.predict(spec))
    assert {key: value for key, value in flatten(measured).items() if key in predicted and predicted[key] != value} \
        == {}
    # not half the fp32 step's: the residual stream, RMSNorm and softmax stay fp32, and each projection keeps its
    # own bf16 copy of the normalised input
    assert measured["saved_activations_bytes"] > plain["saved_activations_bytes"]
    assert measured["categories_at_peak"]["optimizer_state"] == plain["categories_at_peak"]["optimizer_state"]
    assert main(["formula", "--preset", "tiny", "--autocast", "bfloat16"]) == 0
    assert "autocast bfloat16 (emulated as CUDA runs it)" in " ".join(capsys.readouterr().out.split())  # wrapped
    with pytest.raises(ValueError, match="mixed precision over float32"):
        spec.replace(dtype="bfloat16")
