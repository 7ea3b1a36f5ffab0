"""Megatron-LM's theoretical memory usage, one GPU of a tensor-parallel group of t (pipeline and data parallel
size 1, no distributed optimizer), with and without sequence parallelism, as `--log-theoretical-memory` prints it.

Source: NVIDIA/Megatron-LM, megatron/training/theoretical_memory_usage.py (read at commit 00caa53a),
compute_weight_and_optimizer_memory, and the two activation paths report_theoretical_memory chooses between:
compute_activation_memory where sequence parallelism and selective recomputation are both on, else
compute_activation_memory_without_sp:

    parameters per layer  = 2·h·(ffn·g + n) + 2·h²·(1 + G/H)      g = 3/2 with SwiGLU else 1, n = 2 for LayerNorm
                                                                  (weight and bias) else 1; no linear biases
    parameters            = L·(per layer) + n·h + h·V·(2 if untied else 1)    (no position embedding)
    weights and optimizer = 18 bytes per parameter, the parameters  (bf16 weight 2, fp32 gradient 4, fp32 main
                            divided by t ("most loaded model shard")  weight 4, Adam 8)
    activations without SP = 1.05·(L·s·b·h·(10 + 24/t) + 8·s·b + s·b·h + 2·(s·b·V/t + s·b·h))
                                                                  (Korthikanti et al. 2022, Table 2, without the
                                                                  5·a·s²·b of the attention scores; input ids,
                                                                  embedding dropout mask, logits and final-norm
                                                                  output in 2 bytes, 5 % "for optimizer and
                                                                  miscellaneous temporaries")
    activations with SP   = (L·s·b·h·(18 + 4·ffn/h) + 8·s·b + s·b·h + 4·s·b·h·(1 + V/h)) / t
    peak                  = weights and optimizer + activations
(s = T, b = B, h = D, ffn = F, V = vocabulary, L layers, H heads, G key/value heads.) At t = 1 without sequence
parallelism the per-layer count is 34·s·b·h. The file prints no example to reproduce; its parameter count gives
Llama 2 7B's published 6,738,415,616 (tests/test_published.py).

FLOPs: megatron/training/training.py num_floating_point_operations(args, batch_size) (read at the same commit
00caa53a; the newest snapshot read, d98e8a64, splits the core-attention term out to scale with sum(L_i²) for packed
sequences and gives the same for unpacked ones), the dense GPT path (transformer_flops: no MoE, MLA, MTP, linear
attention or output gate), the number Megatron logs as TFLOP/s per GPU:
    forward_backward_expansion_factor = 3   "Each GEMM in the model needs to be performed 3 times (forward pass,
                                            backward wgrad [weight gradient], backward dgrad [data gradient])"
    fma_expansion_factor = 2                "A GEMM of a m*n tensor with a n*k tensor requires 2mnk" FLOPs
    ffn_expansion_factor = 3 with SwiGLU else 2
    self attention per layer = 3·2·(h·(q + 2k) + q·s/2·2 + q·h)      q = kv_channels·H, k = kv_channels·G;
                                            the core term halved: "causal mask (only half of the mask is non-zero)"
    total = b·s·(3·2·h·ffn·ffn_expansion_factor·L + L·(self attention per layer) + 3·2·h·V)   (logits included)
Encoded with kv_channels = D/H, G = kv_heads (query groups), SwiGLU for arch llama, V = vocab_size (Megatron's
padded_vocab_size; our embedding has exactly V rows); forward = total/3, backward = 2·total/3. Megatron's number
counts no recomputation, so predict() gives flops_matmul only without checkpointing (the memory SETUP above takes
every recompute option). Against FlopCounterMode it counts QKᵀ and P·V at half (causal halving) and the rest alike.
"""
from __future__ import annotations

from model.setup import ANY
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "megatron"
DESCRIPTION = ("Megatron-LM theoretical memory, one GPU of t: 18 B/param / t (bf16 + fp32 grad + fp32 main + "
               "Adam), 1.05·(sbh(10 + 24/t)·L + 8sb + sbh + 2sbV/t + 2sbh), (sbh(18 + 4F/h)·L + ...)/t with SP; "
               "FLOPs 3·2·bs·(L·(h·(q+2k) + q·s + q·h + 2|3·h·ffn) + hV)")
# What it claims: Megatron's GPT (LayerNorm, GELU, dropout, tied embeddings) in bf16 mixed precision with fp32 main
# weights and gradients (our closest: autocast over fp32 parameters), attention that keeps no s² scores (flash; the
# 34·s·b·h leaves them out), any recomputation (the without-SP path ignores recompute_granularity), one batch.
# Tensor parallelism: one rank of our FSDP2 2-D mesh with one data-parallel rank (world_size = t: FSDP2 over one
# rank shards nothing), sequence parallel or not; the SP path where our setup matches Megatron's selective
# recomputation (the fused kernels recompute the attention core; not with full checkpointing).
SETUP = {"arch": "gpt2", "autocast": "bfloat16", "attention": ("sdpa-flash", "sdpa-efficient"),
         "checkpointing": ("none", "full", "selective"), "micro_batches": 1, "shard": ("none", "fsdp2"),
         "tensor_parallel": ANY, "sequence_parallel": (False, True)}
BYTES_PER_PARAMETER = 18  # num_bytes_per_parameter without the distributed optimizer
WHOLE, SPLIT = 10, 24  # s·b·h·(10 + 24 / tensor_model_parallel_size) per layer without sequence parallelism
OVERHEAD = 1.05  # overhead_factor
# The 18 bytes itemised as the newest snapshot's num_bytes_per_parameter comments them (d98e8a64: "bf16 model params,
# fp32 main gradients, fp32 main params, and fp32 Adam states"), the fp32 main params counted with the optimizer
# state as ZeRO does; the 5 % overhead of the activations is the file's "optimizer and miscellaneous temporaries".
STATE_BYTES = {"parameters": 2, "gradients": 4, "optimizer_state": 12}


def parameters(config: ModelConfig) -> int:
    """compute_weight_and_optimizer_memory's num_total_parameters (dense layers, no MoE, MLA or MTP)."""
    h, V, L, F = config.d_model, config.vocab_size, config.num_layers, config.d_ff
    norm = 1 if config.arch == "llama" else 2  # RMSNorm has no bias, LayerNorm has
    gated = 1.5 if config.arch == "llama" else 1  # SwiGLU
    attention = 2 * h * h * (1 + config.kv_heads / config.num_heads)
    per_layer = 2 * h * (F * gated + norm) + attention
    untied = config.arch != "gpt2"
    return int(L * per_layer + norm * h + (2 if untied else 1) * h * V)


def within(spec: StepSpec) -> bool:
    """One data-parallel rank: Megatron's 18 bytes per parameter are replicated over data parallelism, which our
    FSDP2 shards."""
    return spec.setup.world_size == spec.setup.tensor_parallel


def sequence_parallel_path(spec: StepSpec) -> bool:
    """report_theoretical_memory's choice: compute_activation_memory where sequence parallelism and selective
    recomputation are on (our fused kernels without full checkpointing)."""
    return spec.setup.sequence_parallel and spec.setup.checkpointing != "full"


def activation_bytes(config: ModelConfig, batch_size: int, t: int = 1, sequence_parallel: bool = False) -> float:
    """compute_activation_memory (sequence_parallel) or compute_activation_memory_without_sp at tp = t, pp = 1."""
    s, b, h, V, L, F = (config.context_length, batch_size, config.d_model, config.vocab_size, config.num_layers,
                        config.d_ff)
    if sequence_parallel:
        return (s * b * h * (18 + 4 * F / h) * L + 8 * s * b + s * b * h + s * b * h * 4 * (1 + V / h)) / t
    total = s * b * h * (WHOLE + SPLIT / t) * L + 8 * s * b + s * b * h + (s * b * V / t + s * b * h) * 2
    return OVERHEAD * total


# num_floating_point_operations' factors (training.py, transformer_flops)
FORWARD_BACKWARD_EXPANSION_FACTOR = 3  # forward, backward wgrad, backward dgrad
FMA_EXPANSION_FACTOR = 2  # 2mnk per GEMM


def num_floating_point_operations(config: ModelConfig, batch_size: int) -> int:
    """transformer_flops for a dense GPT (no MoE, MLA, MTP, linear attention, output gate): b·s·(MLP + L·self
    attention + logits), each term 3·2·(its GEMMs' m·n per token), the core attention q·s/2·2 (causal halving)."""
    h, s, L, V = config.d_model, config.context_length, config.num_layers, config.vocab_size
    kv_channels = config.head_dim
    query_projection_size = kv_channels * config.num_heads
    key_projection_size = value_projection_size = kv_channels * config.kv_heads  # num_query_groups
    ffn_expansion_factor = 3 if config.arch == "llama" else 2  # SwiGLU
    gemm = FORWARD_BACKWARD_EXPANSION_FACTOR * FMA_EXPANSION_FACTOR
    standard_self_attn_term = gemm * (h * (query_projection_size + key_projection_size + value_projection_size)
                                      + query_projection_size * s  # · s / 2 (causal mask) · 2 (QKᵀ and (QKᵀ)V)
                                      + query_projection_size * h)
    mlp = gemm * h * config.d_ff * ffn_expansion_factor * L
    logits = gemm * h * V
    return batch_size * s * (mlp + standard_self_attn_term * L + logits)


def predict(spec: StepSpec) -> dict:
    """params and the peak (weights and optimizer of the rank's 1/t of the parameters + activations), itemised
    (STATE_BYTES; activations as saved activations, and temporaries where the 5 % overhead applies); the AdamW
    implementation plays no part. Without checkpointing and tensor parallelism also flops_matmul:
    num_floating_point_operations, a third forward and two thirds backward."""
    config, batch_size, t = spec.model, spec.batch_size, spec.setup.tensor_parallel
    n = parameters(config)
    fixed = BYTES_PER_PARAMETER * n / t
    sequence = sequence_parallel_path(spec)
    activations = activation_bytes(config, batch_size, t, sequence)
    saved = activations if sequence else activations / OVERHEAD
    states = {category: share * n / t for category, share in STATE_BYTES.items()}
    figures = {"params": n, "peak_bytes": fixed + activations, "fixed_memory_bytes": fixed,
               "model_states": states, "model_states_bytes": fixed,
               "categories_at_peak": {**states, "saved_activations": saved, "temporaries": activations - saved}}
    if spec.setup.checkpointing == "none" and t == 1:  # the FLOPs count no recomputation, of the whole model
        total = num_floating_point_operations(config, batch_size)
        forward = total // FORWARD_BACKWARD_EXPANSION_FACTOR  # every term is a multiple of 3
        figures["flops_matmul"] = {"forward": forward, "backward": total - forward}
    return figures
