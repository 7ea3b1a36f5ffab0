"""analytic.published.zero and analytic.published.deepspeed reproduce the numbers their sources print, and on one
device their model states against the measured step under bf16 autocast (fp32 parameters, gradients and AdamW
state: 16 bytes per parameter, as ZeRO's total, itemised otherwise)."""
import pytest

from analytic.figures import with_model_states
from analytic.params import parameter_count
from analytic.published import deepspeed, zero
from model.config import preset
from model.spec import StepSpec
from profiler.measuring.measure import measure

GB = 10**9


def test_zero_paper_numbers():
    assert zero.model_state_bytes(1.5e9) == 24 * GB  # section 3.1: "at least 24 GB" for a 1.5B GPT-2
    figure_1 = [zero.model_state_bytes(7.5e9, stage, 64) / GB for stage in ("none", "os", "os+g", "os+g+p")]
    assert [round(value, 1) for value in figure_1] == [120.0, 31.4, 16.6, 1.9]
    gpt2_1_5b = preset("gpt2-xl").replace(arch="gpt2")  # h 1600, 48 layers; sequence 1K, batch 32
    assert zero.activation_bytes(gpt2_1_5b, 32) / GB == pytest.approx(60, rel=0.01)  # "about 60 GB"
    with pytest.raises(ValueError):
        zero.model_state_bytes(1.0, "os+p")


def test_deepspeed_estimator_numbers():
    """memory.rst's printed examples (its GB are GiB): 2851M parameters on one node of 8 GPUs."""
    assert round(deepspeed.zero2_gpu_bytes(2851e6, 8) / 2**30, 2) == 15.93
    assert round(deepspeed.zero3_gpu_bytes(2851e6, 32e6, 8) / 2**30, 2) == 6.09
    assert deepspeed.zero2_gpu_bytes(100, 1) == 20 * 100


def test_model_states_against_the_amp_step():
    spec = StepSpec(preset("tiny"), batch_size=2).replace(autocast="bfloat16")
    psi = parameter_count(spec.model)
    measured = with_model_states(measure(spec, "meta", count_flops=False).measured)  # as graded
    assert measured["model_states_bytes"] == zero.predict(spec)["model_states_bytes"] == 16 * psi
    assert measured["model_states"] == {"parameters": 4 * psi, "gradients": 4 * psi, "optimizer_state": 8 * psi}
    assert zero.predict(spec)["model_states"] == {"parameters": 2 * psi, "gradients": 2 * psi,
                                                  "optimizer_state": 12 * psi}
    assert deepspeed.predict(spec)["model_states_bytes"] == 20 * psi
