"""analytic.published.eleuther: the cookbook's per-GPU training memory, its forms checked (it prints no example)."""
import pytest

from analytic.published import eleuther, korthikanti
from analytic.params import parameter_count
from model.config import preset
from model.spec import StepSpec


def test_parameters_untie_the_embedding_and_count_biases():
    """Against the reference block (untied, learned positions, no biases) the cookbook counts 8·h per layer for the
    norms ("ln_params"; two LayerNorms' weights and biases would be 4·h) where two RMSNorm gains are 2·h, and 2·h
    for the final norm where the reference block has h: 6·h·L + h more."""
    config = preset("gpt2-xl")
    h, L = config.d_model, config.num_layers
    assert eleuther.parameters(config) - parameter_count(config) == 6 * h * L + h


def test_bytes_per_parameter_and_activations():
    spec = StepSpec(preset("gpt2-xl"), batch_size=2).replace(autocast="bfloat16")
    n = eleuther.parameters(spec.model)
    figures = eleuther.predict(spec)
    assert figures["model_states_bytes"] == 18 * n
    assert eleuther.predict(spec.replace(autocast="none"))["model_states_bytes"] == 20 * n
    # without checkpointing the activations are Korthikanti's equation 1 over L layers
    bf16 = spec.replace(arch="gpt2", dtype="bfloat16", autocast="none")
    assert figures["saved_activations_bytes"] == pytest.approx(korthikanti.predict(bf16)["saved_activations_bytes"])
    assert figures["peak_bytes"] == figures["model_states_bytes"] + figures["saved_activations_bytes"]


def test_matmul_flops_against_the_counted_step():
    """Without recomputation the cookbook's FLOPs are FlopCounterMode's matmul FLOPs exactly (the reference block has
    its 6·h² of QKV, 2·h² projection, 16·h² FFN and 2·s·h twice per token and layer, the LM head's 2·h·V); with
    full checkpointing it recomputes one forward more than torch's non-reentrant checkpoint, which stops before
    each block's last matmul (w2: 2·t·F·h per layer)."""
    from profiler.measuring.measure import measure

    spec = StepSpec(preset("tiny").replace(num_layers=3), batch_size=2)
    config = spec.model
    t = 2 * config.context_length
    measured = measure(spec, "meta").measured["flops_matmul"]
    assert eleuther.matmul_flops(spec) == {key: measured[key] for key in ("forward", "backward")}
    full = spec.replace(checkpointing="full")
    measured = measure(full, "meta").measured["flops_matmul"]
    predicted = eleuther.matmul_flops(full)
    assert predicted["forward"] == measured["forward"]
    assert predicted["backward"] - measured["backward"] == 2 * t * config.d_ff * config.d_model * config.num_layers
