import subprocess
import sys

import pytest

from analytic import textbook
from analytic.params import parameter_count
from model import PRESETS, ModelConfig
from model.spec import StepSpec
from model.vocabulary import COMPONENTS

TINY = ModelConfig(vocab_size=10, context_length=4, num_layers=1, d_model=6, num_heads=2, d_ff=8)
LISTED = ("norm1", "q_proj", "k_proj", "v_proj", "scores", "softmax", "weighted_sum", "out_proj", "norm2", "w1",
          "silu", "w2", "final_norm", "lm_head", "cross_entropy")


@pytest.mark.parametrize("name", ["tiny", "mini", "gpt2-small", "gpt2-xl"])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_totals_are_sums_of_parts(name, batch):
    config = PRESETS[name]
    mem = textbook.memory(StepSpec(config, batch_size=batch))
    assert mem.total == sum(mem.categories().values())
    assert mem.saved_activations == sum(mem.activations_by_component.values())
    assert mem.gradients == mem.parameters and mem.optimizer_state == 2 * mem.parameters
    step = textbook.flops(config, batch)
    assert step.forward == sum(step.forward_by_component.values())
    assert step.total == step.forward + step.backward + step.optimizer
    figures = textbook.predict(StepSpec(config, batch_size=batch))
    assert figures["peak_bytes"] == sum(figures["categories_at_peak"].values())
    assert figures["saved_activations_bytes"] == sum(figures["saved_activations_by_component"].values())


def test_activation_components_are_exactly_the_listed_ones():
    terms = textbook.activation_elements(TINY, 3)
    assert tuple(terms) == LISTED
    assert set(terms) <= set(COMPONENTS)


def test_tiny_activations_by_hand():
    # B=3, T=4, D=6, H=2, F=8, V=10: BTD 72, BTF 96, BHT² 96, BTV 120
    terms = textbook.activation_elements(TINY, 3)
    assert terms["q_proj"] == 72 and terms["w1"] == 96 and terms["scores"] == 96 and terms["cross_entropy"] == 120
    # L·(8·72 + 2·96 + 2·96) + 72 + 2·120 = 960 + 312
    assert sum(terms.values()) == 1272
    assert textbook.memory(StepSpec(TINY, batch_size=3)).saved_activations == 4 * 1272
    assert textbook.memory(StepSpec(TINY, batch_size=3).replace(dtype="bfloat16")).saved_activations == 2 * 1272


def test_tiny_matmul_flops_by_hand():
    terms = textbook.forward_matmul_flops(TINY, 3)
    assert terms["q_proj"] == terms["k_proj"] == terms["v_proj"] == terms["out_proj"] == 2 * 3 * 4 * 36 == 864
    assert terms["scores"] == terms["weighted_sum"] == 2 * 3 * 16 * 6 == 576
    assert terms["w1"] == terms["w2"] == 2 * 3 * 4 * 6 * 8 == 1152
    assert terms["lm_head"] == 2 * 3 * 4 * 6 * 10 == 1440
    step = textbook.flops(TINY, 3)
    assert step.forward == 4 * 864 + 2 * 576 + 2 * 1152 + 1440 == 8352 and step.backward == 16704
    # N = 2·10·6 + 4·6 + (4·36 + 2·6·8 + 2·6) + 6 = 402
    assert parameter_count(TINY) == 402 and step.optimizer == 14 * 402


def test_gpt2_xl_figures():
    a, b = textbook.memory_line(StepSpec(PRESETS["gpt2-xl"]))
    assert (a, b) == (15_517_753_344, 16 * 1_637_176_000)
    figures = textbook.problem_figures()
    assert figures["max_batch_80GB"] == 3  # (80e9 - 26.19e9) / 15.52e9 = 3.47
    assert figures["adamw_flops"] == 14 * 1_637_176_000
    assert figures["training_days"] == pytest.approx(5115.2, abs=0.1)


def test_max_batch_at_the_boundary():
    a, b = textbook.memory_line(StepSpec(TINY))
    assert textbook.solve_linear_budget(a, b, 5 * a + b) == 5
    assert textbook.solve_linear_budget(a, b, 5 * a + b - 1) == 4
    assert textbook.solve_linear_budget(a, b, a + b) == 1
    assert textbook.solve_linear_budget(a, b, a + b - 1) == 0
    assert textbook.solve_linear_budget(a, b, b - 1) == 0
    for budget in range(b - 2, b + 4 * a + 3):  # closed form = brute force
        fits = [batch for batch in range(0, 6) if a * batch + b <= budget]
        assert textbook.solve_linear_budget(a, b, budget) == (max(fits) if fits else 0)
    with pytest.raises(ValueError):
        textbook.solve_linear_budget(0, b, 10 * b)
    assert textbook.max_batch_size(StepSpec(TINY), 5 * a + b) == 5  # the formula-set entry point


def test_memory_is_linear_in_batch():
    a, b = textbook.memory_line(StepSpec(PRESETS["mini"]))
    for batch in (1, 2, 7):
        assert textbook.memory(StepSpec(PRESETS["mini"], batch_size=batch)).total == a * batch + b


def test_training_days():
    assert textbook.training_days(19.5e12 * 0.5 * 86_400, 1, 19.5e12, 0.5) == pytest.approx(1.0)
    assert textbook.training_days(2e15, 400_000, 19.5e12, 0.5) == pytest.approx(2e15 * 4e5 / 9.75e12 / 86_400)
    with pytest.raises(ValueError):
        textbook.training_days(1, 1, 19.5e12, 0)


def test_analytic_does_not_import_torch():
    code = ("import sys, analytic.textbook, analytic.audit, analytic.seeds.common; "
            "from analytic.seeds import seed_modules; seed_modules(); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
