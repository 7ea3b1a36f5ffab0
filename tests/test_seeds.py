import re

import pytest

from analytic.audit import FIGURES
from analytic.seeds import seed_000, seed_001, seed_002, seed_003, seed_004, seed_modules
from model import PRESETS
from model.spec import StepSpec
from model.vocabulary import COMPONENTS

XL = PRESETS["gpt2-xl"]
MODULES = seed_modules()


def elements(module, config=XL, batch=1):
    return sum(module.FORMULAS.activation_elements(config, batch).values())


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_module_records(module):
    number = module.NAME.split("_")[1]
    assert re.fullmatch(r"seed_\d{3}", module.NAME)
    assert re.fullmatch(number + r"_[0-9a-f]{16}", module.SEED_FILE)
    assert set(module.STATED) <= set(FIGURES)
    assert set(module.REASONS) <= set(module.STATED)
    assert module.DESCRIPTION and module.NOTES


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
@pytest.mark.parametrize("preset", ["tiny", "gpt2-xl"])
def test_predict_figures_are_consistent(module, preset):
    config = PRESETS[preset]
    one, three = (module.predict(StepSpec(config, batch_size=b)) for b in (1, 3))
    assert one["peak_bytes"] == sum(one["categories_at_peak"].values())
    a, b = module.FORMULAS.memory_line(config)
    assert one["peak_bytes"] == a + b and three["peak_bytes"] == 3 * a + b
    assert one["flops"]["backward"] == 2 * one["flops"]["forward"]
    assert one["flops"]["optimizer"] == one["adamw_flops_per_param"] * one["params"]
    if "saved_activations_by_component" in one:
        assert sum(one["saved_activations_by_component"].values()) == one["saved_activations_bytes"]
        assert set(one["saved_activations_by_component"]) <= set(COMPONENTS)


def test_seed_000_formulas():
    assert seed_000.params(XL) == 1_637_176_000  # the same N as our model
    assert elements(seed_000) == 48 * (16 * 1024 * 1600 + 2 * 25 * 1024**2) + 1024 * 1600 + 1024 * 50257
    assert seed_000.FORMULAS.step_flops(XL, 1)["forward"] == 2 * 1_637_176_000 * 1024


def test_seed_001_formulas():
    assert seed_001.params(XL) == 2 * 50257 * 1600 + 16 * 48 * 1600**2 == 2_126_902_400
    assert 4 * elements(seed_001) == 15_517_753_344  # "14.4G": GiB
    assert seed_001.predict(StepSpec(XL))["flops"]["optimizer"] == 16 * 2_126_902_400


def test_seed_002_formulas():
    assert seed_002.params(XL) == 1_635_537_600
    assert seed_002.FORMULAS.memory_line(XL) == (4 * 1024 * (48 * (19 * 1600 + 2 * 25 * 1024) + 1600 + 50257),
                                                 16 * 1_635_537_600)
    assert "saved_activations_by_component" not in seed_002.predict(StepSpec(XL))  # its 19·BTd is not itemised


def test_seed_003_formulas():
    assert seed_003.params(XL) == 2_127_057_600
    assert elements(seed_003) == 3_513_402_368  # "Total per batch: ~3,513,402,368 values"
    assert seed_003.FORMULAS.step_flops(XL, 1)["forward"] == 1024 * 3_263_692_800  # "3,263,692,800 per token"


def test_seed_004_formulas():
    assert seed_004.params(XL) == 1_637_020_800
    assert seed_004.FORMULAS.memory_line(XL) == (4_667_508_736, 13_096_166_400)  # bf16: 4.35 GiB, 12.20 GiB
    step = seed_004.FORMULAS.step_flops(XL, 1)
    # its table: 48 blocks = 3,350,357,803,008; + final RMSNorm 4,917,248 + LM head 2·1024·1600·50257
    assert step["forward"] == 3_350_357_803_008 + 4_917_248 + 2 * 1024 * 1600 * 50257
    assert sum(step.values()) == 10_571_326_906_368  # printed "1.0571 TeraFLOPs" (divided by 10e12)
