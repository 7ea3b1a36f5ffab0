"""Megatron-LM's theoretical memory usage, single GPU (tensor, pipeline and data parallel size 1, no distributed
optimizer, no sequence parallelism), as `--log-theoretical-memory` prints it.

Source: NVIDIA/Megatron-LM, megatron/training/theoretical_memory_usage.py (read at commit 00caa53a),
compute_weight_and_optimizer_memory and compute_activation_memory_without_sp, the path report_theoretical_memory
takes whenever sequence parallelism with selective recomputation is off (always on one GPU):

    parameters per layer  = 2·h·(ffn·g + n) + 2·h²·(1 + G/H)      g = 3/2 with SwiGLU else 1, n = 2 for LayerNorm
                                                                  (weight and bias) else 1; no linear biases
    parameters            = L·(per layer) + n·h + h·V·(2 if untied else 1)    (no position embedding)
    weights and optimizer = 18 bytes per parameter                (bf16 weight 2, fp32 gradient 4, fp32 main
                                                                  weight 4, Adam 8)
    activations per layer = s·b·h·(10 + 24/tp) = 34·s·b·h at tp = 1   (Korthikanti et al. 2022, Table 2, without
                                                                  the 5·a·s²·b of the attention scores)
    activations           = 1.05·(L·34·s·b·h + 8·s·b + s·b·h + 2·(s·b·V + s·b·h))   input ids, embedding
                                                                  dropout mask, logits and final-norm output in
                                                                  2 bytes, 5 % "for optimizer and miscellaneous temporaries"
    peak                  = weights and optimizer + activations
(s = T, b = B, h = D, ffn = F, V = vocabulary, L layers, H heads, G key/value heads.) The file prints no example
to reproduce; its parameter count gives Llama 2 7B's published 6,738,415,616 (tests/test_published.py).
"""
from __future__ import annotations

from model.config import ModelConfig

NAME = "megatron"
DESCRIPTION = ("Megatron-LM theoretical memory, one GPU: 18 B/param (bf16 + fp32 grad + fp32 main + Adam), "
               "1.05·(34sbh·L + 8sb + sbh + 2sbV + 2sbh)")
# What it claims: Megatron's GPT (LayerNorm, GELU, dropout, tied embeddings) in bf16 mixed precision with fp32 main
# weights and gradients (our closest: autocast over fp32 parameters), attention that keeps no s² scores (flash; the
# 34·s·b·h leaves them out), any recomputation (the without-SP path ignores recompute_granularity), one batch.
SETUP = {"arch": "gpt2", "autocast": "bfloat16", "attention": ("sdpa-flash", "sdpa-efficient"),
         "checkpointing": ("none", "full", "selective"), "micro_batches": 1}
BYTES_PER_PARAMETER = 18  # num_bytes_per_parameter without the distributed optimizer
ACTIVATION_PER_LAYER = 34  # s·b·h·(10 + 24 / tensor_model_parallel_size) at tp = 1
OVERHEAD = 1.05  # overhead_factor


def parameters(config: ModelConfig) -> int:
    """compute_weight_and_optimizer_memory's num_total_parameters (dense layers, no MoE, MLA or MTP)."""
    h, V, L, F = config.d_model, config.vocab_size, config.num_layers, config.d_ff
    norm = 1 if config.arch == "llama" else 2  # RMSNorm has no bias, LayerNorm has
    gated = 1.5 if config.arch == "llama" else 1  # SwiGLU
    attention = 2 * h * h * (1 + config.kv_heads / config.num_heads)
    per_layer = 2 * h * (F * gated + norm) + attention
    untied = config.arch != "gpt2"
    return int(L * per_layer + norm * h + (2 if untied else 1) * h * V)


def activation_bytes(config: ModelConfig, batch_size: int) -> float:
    """compute_activation_memory_without_sp at tp = pp = 1."""
    s, b, h, V, L = config.context_length, batch_size, config.d_model, config.vocab_size, config.num_layers
    total = ACTIVATION_PER_LAYER * s * b * h * L + 8 * s * b + s * b * h + (s * b * V + s * b * h) * 2
    return OVERHEAD * total


def predict(config: ModelConfig, batch_size: int, optimizer: str = "foreach") -> dict:
    """params and the peak (weights and optimizer + activations); the AdamW implementation plays no part."""
    n = parameters(config)
    fixed = BYTES_PER_PARAMETER * n
    return {"params": n, "peak_bytes": fixed + activation_bytes(config, batch_size),
            "fixed_memory_bytes": fixed}
