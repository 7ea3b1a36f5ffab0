"""PaLM (Chowdhery et al. 2022, arXiv 2204.02311) Appendix B, as analytic.published.palm encodes it."""
import pytest

from analytic import exact
from analytic.formula_sets import describes
from analytic.params import parameter_breakdown, parameter_count
from analytic.published import palm
from model import PRESETS
from model.spec import StepSpec

# Table 1 (layers, heads, d_model, parameters in billions) with T = 2048 (Section 5, "Sequence length") and the head
# size Q = 256; Table 22's "TFLOPs per token (non-attn+attn)".
PALM = {"8B": (32, 16, 4096, 8.63, 0.0550), "62B": (64, 32, 8192, 62.50, 0.388),
        "540B": (118, 48, 18432, 540.35, 3.28)}
T, Q, VOCAB = 2048, 256, 256_000


def palm_parameters(layers, heads, d_model):
    """PaLM's count as Section 2 describes the block, reconstructed here (not printed): no biases; multi-query
    attention (Q of H·Q, K and V of one head, output H·Q → d_model); SwiGLU's three matrices with an MLP width of
    4·d_model (an assumption); the input-output embedding shared, 256k × d_model; layer norm scales left out."""
    return layers * (2 * d_model * heads * Q + 2 * d_model * Q + 3 * d_model * 4 * d_model) + VOCAB * d_model


@pytest.mark.parametrize("model", PALM)
def test_palm_table_22_flops_per_token(model):
    """6N + 12LHQT with N = Table 1's count reproduces Table 22's TFLOPs per token; Table 1's counts themselves come
    out of the Section 2 block with Q = 256, which is how the head size is pinned (the text read does not print it)."""
    layers, heads, d_model, billions, tflops = PALM[model]
    assert round(palm_parameters(layers, heads, d_model) / 1e9, 2) == billions
    per_token = palm.flops_per_token(billions * 1e9, layers, heads, Q, T) / 1e12
    assert float(f"{per_token:.3g}") == tflops  # printed to three significant figures


def test_palm_540b_model_flops_utilization():
    """Appendix B: "45.7% without self-attention ((238.3×6×540)/(275×6144)) or 46.2% with it" (238.3K tokens/s on
    6144 TPU v4 chips of 275 peak TFLOP/s)."""
    peak = 275e12 * 6144
    assert round(100 * palm.model_flops_utilization(238.3e3, 6 * 540e9, peak), 1) == 45.7
    layers, heads, _, billions, _ = PALM["540B"]
    with_attention = palm.flops_per_token(billions * 1e9, layers, heads, Q, T)
    assert round(100 * palm.model_flops_utilization(238.3e3, with_attention, peak), 1) == 46.2


def test_palm_step_algebra():
    """(2N + 4LHQT) per token forward, (4N + 8LHQT) backward, B·T tokens; linear in the batch."""
    config = PRESETS["llama2-7b"]
    L, H, Qh, Tc = config.num_layers, config.num_heads, config.head_dim, config.context_length
    n = parameter_count(config)
    one, two = palm.predict(StepSpec(config, batch_size=1)), palm.predict(StepSpec(config, batch_size=2))
    assert one["params"] == n
    assert one["flops_matmul"] == {"forward": (2 * n + 4 * L * H * Qh * Tc) * Tc,
                                   "backward": (4 * n + 8 * L * H * Qh * Tc) * Tc}
    assert sum(one["flops_matmul"].values()) == palm.flops_per_token(n, L, H, Qh, Tc) * Tc
    assert two["flops_matmul"] == {key: 2 * value for key, value in one["flops_matmul"].items()}


def test_palm_against_our_matmuls():
    """Against FlopCounterMode's count (analytic.exact): 12LHQT is QKᵀ and P·V in full, per query head (grouped K/V
    as TinyLlama's changes nothing there); 6N is two FLOPs per parameter forward, so the forward is over by
    2 FLOPs per token for each parameter no matmul uses: llama's untied input embedding and norm gains."""
    config = PRESETS["tinyllama-1.1b"]
    parts = parameter_breakdown(config)
    unused = parts["embedding"] + 2 * config.d_model * config.num_layers + parts["final_norm"]
    measured = exact.predict(StepSpec(config))["flops_matmul"]["forward"]
    assert palm.predict(StepSpec(config))["flops_matmul"]["forward"] - measured == 2 * config.context_length * unused


def test_palm_is_graded_on_its_setup_only():
    for name in ("gpt2-small", "hf-gpt2", "llama2-7b"):
        assert describes(palm, StepSpec(PRESETS[name]))
    assert describes(palm, StepSpec(PRESETS["llama2-7b"]).replace(dtype="bfloat16", attention="sdpa-flash"))
    assert not describes(palm, StepSpec(PRESETS["llama2-7b"]).replace(checkpointing="full"))  # MFU leaves out remat
