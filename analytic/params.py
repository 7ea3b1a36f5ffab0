"""Exact parameter count of model.transformer.TransformerLM."""
from __future__ import annotations

from model.config import ModelConfig


def parameter_breakdown(config: ModelConfig) -> dict[str, int]:
    """Parameters by part; the total is their sum.

    1. token embedding: V·D
    2. learned position embedding (positional='learned' only): T·D; RoPE and 'none' have no parameters
    3. per block, L times: two RMSNorm gains 2·D, W_Q, W_K, W_V, W_O 4·D², W1 and W2 2·D·F (no biases)
    4. final RMSNorm gain: D
    5. untied LM head: D·V
    N = 2·V·D + [T·D] + L·(4·D² + 2·D·F + 2·D) + D
    """
    V, T, L, D, F = (config.vocab_size, config.context_length, config.num_layers, config.d_model, config.d_ff)
    return {
        "embedding": V * D,
        "position_embedding": T * D if config.positional == "learned" else 0,
        "blocks": L * (4 * D * D + 2 * D * F + 2 * D),
        "final_norm": D,
        "lm_head": D * V,
    }


def parameter_count(config: ModelConfig) -> int:
    return sum(parameter_breakdown(config).values())


def parameter_tensor_count(config: ModelConfig) -> int:
    """How many parameter tensors (the optimizer's per-tensor bookkeeping scales with this)."""
    return 3 + (config.positional == "learned") + 8 * config.num_layers


def parameter_tensor_sizes(config: ModelConfig) -> list[int]:
    """numel of each parameter tensor in model.parameters() order."""
    V, T, L, D, F = (config.vocab_size, config.context_length, config.num_layers, config.d_model, config.d_ff)
    sizes = [V * D] + ([T * D] if config.positional == "learned" else [])
    sizes += [D, D * D, D * D, D * D, D * D, D, F * D, D * F] * L
    return sizes + [D, V * D]
