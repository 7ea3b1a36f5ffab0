import pytest
from hypothesis import given, settings

from analytic.params import parameter_count, parameter_tensor_count, parameter_tensor_sizes
from model import PRESETS, StepSpec
from model.config import ARCH_POSITIONAL
from model.step import build
from strategies import step_specs


def measured(config):
    model, _ = build(StepSpec(config), "meta")
    return [p.numel() for p in model.parameters()]


@pytest.mark.parametrize("name, positional", [(name, positional) for name, config in PRESETS.items()
                                               for positional in ARCH_POSITIONAL[config.arch]])
def test_parameter_count_is_exact_for_presets(name, positional):
    config = PRESETS[name].replace(positional=positional)
    sizes = measured(config)
    assert parameter_count(config) == sum(sizes)
    assert parameter_tensor_sizes(config) == sizes
    assert parameter_tensor_count(config) == len(sizes)


@settings(max_examples=120, deadline=None)
@given(step_specs(archs=("reference", "gpt2", "llama")))
def test_parameter_count_is_exact_for_random_configs(spec):
    assert parameter_count(spec.model) == sum(measured(spec.model))


def test_gpt2_xl_parameter_count():
    assert parameter_count(PRESETS["gpt2-xl"]) == 1_637_176_000


@pytest.mark.parametrize("name, published", [
    ("hf-gpt2", 124_439_808), ("hf-gpt2-medium", 354_823_168), ("hf-gpt2-large", 774_030_080),
    ("hf-gpt2-xl", 1_557_611_200), ("llama2-7b", 6_738_415_616), ("tinyllama-1.1b", 1_100_048_384)])
def test_published_parameter_counts(name, published):
    """The released models' counts (Hugging Face: sum of numel over model.parameters(), tied weights once)."""
    assert parameter_count(PRESETS[name]) == published == sum(measured(PRESETS[name]))


@pytest.mark.parametrize("arch", ["reference", "gpt2", "llama"])
def test_training_step_learns_on_cpu(arch):
    from model.step import make_batch, train_step
    spec = StepSpec(PRESETS["tiny"].replace(arch=arch, dropout=0.0))
    model, optimizer = build(spec)
    tokens, targets = make_batch(spec.model, 2)
    losses = [train_step(model, optimizer, tokens, targets, spec.setup).item() for _ in range(5)]
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in model.parameters())  # zero_grad(set_to_none=True)
    if arch == "gpt2":
        assert model.lm_head.weight is model.embedding.weight  # tied
