"""karpathy/nanoGPT's estimate_mfu (model.py, commit 3adf61e1), as analytic.published.nanogpt encodes it."""
import pytest

from analytic import exact
from analytic.formula_sets import describes
from analytic.params import parameter_count
from analytic.published import nanogpt
from model import PRESETS
from model.spec import StepSpec


def test_nanogpt_transformer_sizing_palm_flops():
    """transformer_sizing.ipynb, GPT-2 124M with bias=False (block_size 1024, vocab 50257, 12 layers, 12 heads,
    n_embd 768): params total 124337664, less the 786432 of the position embedding; "palm_flops: 875062886400"
    per sequence, against its own count "forward_total 291648307200" (×3: "total 874944921600", "ratio: 1.0001")."""
    n = 124_337_664 - 786_432
    palm_flops = nanogpt.flops_per_token(n, 12, 12, 768 // 12, 1024) * 1024
    assert palm_flops == 875_062_886_400
    assert round(palm_flops / 874_944_921_600, 4) == 1.0001


def test_nanogpt_forward_total_is_our_matmul_count():
    """The notebook's weight-FLOPs forward_total 291648307200 is what FlopCounterMode counts for GPT-2 124M (biases
    add no matmul FLOPs); estimate_mfu's 6N + 12LHQT is 0.085 % above it with GPT-2's biases and LayerNorms in N."""
    config = PRESETS["hf-gpt2"]
    measured = exact.predict(StepSpec(config))["flops_matmul"]
    assert measured["forward"] == 291_648_307_200
    predicted = nanogpt.predict(StepSpec(config))["flops_matmul"]
    assert sum(predicted.values()) / sum(measured.values()) == pytest.approx(1.00085, abs=1e-5)


def test_nanogpt_num_params_and_mfu():
    """get_num_params() of GPT-2 124M with biases: scaling_laws.ipynb's gpt_params "123.653376" (million), model.py's
    "number of parameters: 123.65M"; estimate_mfu's 312e12 A100 bf16 peak: the notebook's "fraction of A100 used:
    37.14%" (100 sequences in 0.755 s at its 874944921600 FLOPs each)."""
    config = PRESETS["hf-gpt2"]
    assert nanogpt.get_num_params(config) == nanogpt.predict(StepSpec(config))["params"] == 123_653_376
    assert nanogpt.get_num_params(config, non_embedding=False) == parameter_count(config) == 124_439_808
    assert round(100 * nanogpt.estimate_mfu(874_944_921_600 / 1024, 1024, 20 * 5, 0.755), 2) == 37.14


def test_nanogpt_step_algebra():
    """flops_per_fwdbwd = (6N + 12LHQT)·T per sequence, B sequences, a third forward; linear in the batch."""
    config = PRESETS["hf-gpt2-xl"]
    L, H, Q, T = config.num_layers, config.num_heads, config.head_dim, config.context_length
    n = parameter_count(config) - T * config.d_model
    one, two = (nanogpt.predict(StepSpec(config, batch_size=b))["flops_matmul"] for b in (1, 2))
    assert one["forward"] + one["backward"] == (6 * n + 12 * L * H * Q * T) * T
    assert one["backward"] == 2 * one["forward"]
    assert two == {key: 2 * value for key, value in one.items()}


def test_nanogpt_is_graded_on_its_setup_only():
    assert describes(nanogpt, StepSpec(PRESETS["hf-gpt2"]))
    assert describes(nanogpt, StepSpec(PRESETS["hf-gpt2-xl"]).replace(autocast="bfloat16", attention="sdpa-flash"))
    assert not describes(nanogpt, StepSpec(PRESETS["hf-gpt2"]).replace(checkpointing="full"))
    assert not describes(nanogpt, StepSpec(PRESETS["gpt2-small"]))  # untied head: N would count the embedding twice
