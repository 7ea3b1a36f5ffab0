"""Chowdhery et al. 2022, "PaLM: Scaling Language Modeling with Pathways" (arXiv 2204.02311), Appendix B "Compute
Usage and Environmental Impact" (model FLOPs utilization), with Section 2 (architecture), Table 1 (model sizes),
Section 4.1 and Table 22 (read from the paper's text as stored in the search tool's index of public repositories).

As published: "Excluding self-attention, an N-parameter decoder-only model requires 6N matmul FLOPs per token seen
(2N for forward and 4N for backward), because each matmul performs one multiplication and one addition per pair of
input values, and the backward pass includes two matmuls for each one in the forward pass (Kaplan et al., 2020).
The matmuls in dense self-attention add 6LH(2QT) FLOPs per token [...] where L, H, Q, and T are the number of
layers, the number of heads, the head dimension, and the sequence length respectively. [...] R = P / (6N + 12LHQT)."
MFU excludes rematerialization ("the 'theoretical maximum' throughput only accounts for the required operations to
compute the forward+backward passes, and not rematerialization", Section 4.1).

What N is: the model's parameter count, embeddings included. Table 22's "TFLOPs per token (non-attn + attn)"
0.0550 / 0.388 / 3.28 for PaLM 8B / 62B / 540B are 6N + 12LHQT with N = Table 1's 8.63 / 62.50 / 540.35 billion,
counts that hold PaLM's shared input-output embedding (256k × d_model), at T = 2048 and Q = 256 (the head size
is not printed in the text read; 256 is the one for which Table 1's parameter counts and Table 22 both come out).

Encoded: N = parameter_count(config) (every parameter); per token forward 2N + 2LH(2QT) = 2N + 4LHQT, backward
2 × that (two matmuls per forward matmul); B·T tokens a step; H = num_heads (query heads: with grouped or
multi-query attention the QKᵀ and P·V matmuls still run per query head), Q = head_dim. The formula counts the
attention matmuls in full (no causal halving), as ours. Where N holds parameters that are no matmul's (an untied
input embedding V·D: 'reference' and 'llama'; learned positions T·D) it counts 6 FLOPs per token for each anyway.
"""
from __future__ import annotations

from analytic.params import parameter_count
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "palm"
DESCRIPTION = ("PaLM (Chowdhery et al. 2022) App. B: 6N + 12LHQT FLOPs per token (2N + 4LHQT forward), "
               "N = all parameters")
# What it claims: "a dense Transformer language model", "an N-parameter decoder-only model", PaLM's own being
# SwiGLU (three MLP matmuls, all in N) with multi-query attention (narrow K/V projections, in N; 12LHQT counts query
# heads): the formula is written for any dense decoder, so every arch (llama's SwiGLU and GQA included); model FLOPs
# without rematerialization; any precision and attention kernel.
SETUP = {"arch": ("reference", "gpt2", "llama"), "checkpointing": "none"}
FORWARD_FLOPS_PER_PARAMETER = 2  # 2N forward
BACKWARD_FLOPS_PER_PARAMETER = 4  # 4N backward
ATTENTION_FLOPS = 12  # 6LH(2QT) = 12LHQT per token, forward a third of it


def flops_per_token(n: float, L: int, H: int, Q: int, T: int) -> float:
    """Model FLOPs per token: 6N + 12LHQT."""
    return (FORWARD_FLOPS_PER_PARAMETER + BACKWARD_FLOPS_PER_PARAMETER) * n + ATTENTION_FLOPS * L * H * Q * T


def model_flops_utilization(tokens_per_second: float, flops_token: float, peak_flops_per_second: float) -> float:
    """MFU: observed tokens per second over R = P / (6N + 12LHQT)."""
    return tokens_per_second * flops_token / peak_flops_per_second


def forward_flops_per_token(config: ModelConfig) -> int:
    """2N + 4LHQT: a third of 6N + 12LHQT."""
    L, H, Q, T = config.num_layers, config.num_heads, config.head_dim, config.context_length
    return FORWARD_FLOPS_PER_PARAMETER * parameter_count(config) + ATTENTION_FLOPS // 3 * L * H * Q * T


def predict(spec: StepSpec) -> dict:
    """params = N (every parameter); flops_matmul: (2N + 4LHQT) per token forward and (4N + 8LHQT) backward, for
    B·T tokens. The optimizer plays no part."""
    config, batch_size = spec.model, spec.batch_size
    forward = forward_flops_per_token(config) * batch_size * config.context_length
    return {"params": parameter_count(config), "flops_matmul": {"forward": forward, "backward": 2 * forward}}
