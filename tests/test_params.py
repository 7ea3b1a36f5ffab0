import pytest
import torch
from hypothesis import given, settings, strategies as st

from analytic.params import parameter_count, parameter_tensor_count, parameter_tensor_sizes
from model import PRESETS, ModelConfig
from model.step import build


def measured(config):
    model, _ = build(config, "meta")
    return [p.numel() for p in model.parameters()]


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("positional", ["learned", "rope", "none"])
def test_parameter_count_is_exact_for_presets(name, positional):
    config = PRESETS[name].replace(positional=positional)
    sizes = measured(config)
    assert parameter_count(config) == sum(sizes)
    assert parameter_tensor_sizes(config) == sizes
    assert parameter_tensor_count(config) == len(sizes)


@st.composite
def configs(draw):
    heads = draw(st.integers(1, 6))
    head_dim = draw(st.integers(1, 12)) * 2
    return ModelConfig(vocab_size=draw(st.integers(1, 300)), context_length=draw(st.integers(1, 40)),
                       num_layers=draw(st.integers(1, 3)), d_model=heads * head_dim, num_heads=heads,
                       d_ff=draw(st.one_of(st.none(), st.integers(1, 100))),
                       positional=draw(st.sampled_from(["learned", "rope", "none"])))


@settings(max_examples=120, deadline=None)
@given(configs())
def test_parameter_count_is_exact_for_random_configs(config):
    assert parameter_count(config) == sum(measured(config))


def test_gpt2_xl_parameter_count():
    assert parameter_count(PRESETS["gpt2-xl"]) == 1_637_176_000


def test_training_step_learns_on_cpu():
    from model.step import make_batch, train_step
    config = PRESETS["tiny"]
    model, optimizer = build(config)
    tokens, targets = make_batch(config, 2)
    losses = [train_step(model, optimizer, tokens, targets).item() for _ in range(5)]
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in model.parameters())  # zero_grad(set_to_none=True)
