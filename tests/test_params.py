import pytest
from hypothesis import given, settings

from analytic.params import parameter_count, parameter_tensor_count, parameter_tensor_sizes
from model import PRESETS
from model.step import build
from strategies import model_configs


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


@settings(max_examples=120, deadline=None)
@given(model_configs())
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
