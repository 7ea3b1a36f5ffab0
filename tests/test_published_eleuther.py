"""analytic.published.eleuther: the cookbook's per-GPU training memory, its forms checked (it prints no example)."""
import pytest

from analytic.published import eleuther, korthikanti
from analytic.params import parameter_count
from model.config import preset


def test_parameters_untie_the_embedding_and_count_biases():
    """Against the card's block (untied, learned positions, no biases) the cookbook counts 8·h per layer for the
    norms ("ln_params"; two LayerNorms' weights and biases would be 4·h) where two RMSNorm gains are 2·h, and 2·h
    for the final norm where the card has h: 6·h·L + h more."""
    config = preset("gpt2-xl")
    h, L = config.d_model, config.num_layers
    assert eleuther.parameters(config) - parameter_count(config) == 6 * h * L + h


def test_bytes_per_parameter_and_activations():
    config = preset("gpt2-xl").replace(autocast="bfloat16")
    n = eleuther.parameters(config)
    figures = eleuther.predict(config, 2)
    assert figures["model_states_bytes"] == 18 * n
    assert eleuther.predict(config.replace(autocast="none"), 2)["model_states_bytes"] == 20 * n
    # without checkpointing the activations are Korthikanti's equation 1 over L layers
    bf16 = config.replace(arch="gpt2", dtype="bfloat16", autocast="none")
    assert figures["saved_activations_bytes"] == pytest.approx(korthikanti.predict(bf16, 2)["saved_activations_bytes"])
    assert figures["peak_bytes"] == figures["model_states_bytes"] + figures["saved_activations_bytes"]
