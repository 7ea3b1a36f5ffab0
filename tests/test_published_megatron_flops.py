"""Megatron-LM's num_floating_point_operations (megatron/training/training.py, commit 00caa53a), as
analytic.published.megatron encodes it for a dense GPT."""
from analytic import exact
from analytic.published import megatron
from model import PRESETS
from model.spec import StepSpec


def test_megatron_flops_attention_is_the_basic_arithmetic_with_causal_halving():
    """The source's "Basic arithmetic" for one self-attention block (forward): qkv projection 6Bsh², attn 2Bs²h,
    attn over value 2Bs²h, oproj 2Bsh²; num_floating_point_operations takes 3× each (forward, wgrad, dgrad) and the
    two s² terms at half ("causal mask (only half of the mask is non-zero)"); the MLP 3·2·h·ffn·2 and the logits
    3·2·h·V per token."""
    config = PRESETS["hf-gpt2"]
    B, s, h, L, V, F = 2, config.context_length, config.d_model, config.num_layers, config.vocab_size, config.d_ff
    attention = 6 * B * s * h * h + (2 * B * s * s * h + 2 * B * s * s * h) / 2 + 2 * B * s * h * h
    mlp = 2 * (2 * B * s * h * F)
    logits = 2 * B * s * h * V
    assert megatron.num_floating_point_operations(config, B) == 3 * (L * (attention + mlp) + logits)


def test_megatron_flops_grouped_query_swiglu():
    """With query groups the K and V projections are kv_channels·G wide; SwiGLU stacks three h×ffn GEMMs."""
    config = PRESETS["tinyllama-1.1b"]
    b, s, h, L, V, F = 1, config.context_length, config.d_model, config.num_layers, config.vocab_size, config.d_ff
    q, k = config.head_dim * config.num_heads, config.head_dim * config.kv_heads
    per_token = 6 * (L * (h * (q + 2 * k) + q * s + q * h + 3 * h * F) + h * V)
    assert megatron.num_floating_point_operations(config, b) == b * s * per_token


def test_megatron_predict_flops_split_and_batch():
    """forward = total/3 (one of forward, wgrad, dgrad), backward 2·total/3; linear in the batch."""
    spec = StepSpec(PRESETS["hf-gpt2"]).replace(autocast="bfloat16", attention="sdpa-flash")
    one, two = (megatron.predict(spec.replace(batch_size=b))["flops_matmul"] for b in (1, 2))
    assert one["forward"] + one["backward"] == megatron.num_floating_point_operations(spec.model, 1)
    assert one["backward"] == 2 * one["forward"]
    assert two == {key: 2 * value for key, value in one.items()}


def test_megatron_flops_halve_our_attention_matmuls():
    """Against FlopCounterMode's count (analytic.exact) the forward is short by exactly half of QKᵀ and P·V,
    2·B·s²·h per layer (the causal halving); projections, MLP (GELU or SwiGLU, grouped K/V) and logits agree."""
    for name in ("hf-gpt2", "tinyllama-1.1b"):
        config = PRESETS[name]
        s, h, L = config.context_length, config.d_model, config.num_layers
        measured = exact.predict(StepSpec(config))["flops_matmul"]["forward"]
        assert megatron.predict(StepSpec(config))["flops_matmul"]["forward"] + L * 2 * s * s * h == measured


def test_megatron_flops_only_without_recomputation():
    """The memory figures are unchanged; FLOPs come without checkpointing only (Megatron counts no recompute)."""
    spec = StepSpec(PRESETS["hf-gpt2-xl"], batch_size=4).replace(autocast="bfloat16", attention="sdpa-flash")
    plain = megatron.predict(spec)
    for checkpointing in ("full", "selective"):
        recomputed = megatron.predict(spec.replace(checkpointing=checkpointing))
        assert "flops_matmul" not in recomputed
        assert recomputed == {key: value for key, value in plain.items() if key != "flops_matmul"}
    assert plain["peak_bytes"] == 18 * plain["params"] + megatron.activation_bytes(spec.model, 4)
