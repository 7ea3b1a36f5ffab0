"""EleutherAI's cookbook memory calculator, one GPU, training.

Source: EleutherAI/cookbook, calc/calc_transformer_mem.py calc_mem (read at commit 069ae2ef), with its DEFAULTS
(num_gpus 1, tensor and pipeline parallel 1, ZeRO stage 1 (no sharding on one GPU, no communication buffer),
mixed precision with high/low precision 4/2 bytes, gradients 4 bytes, no MoE, no miscellaneous memory):
    parameters   = 2·V·h + h·s + 8·h·L + 2·h + 2·(1 + kv)·L·h² + n_linears·L·ff·h²     (untied embeddings, a
                   learned position embedding, "ln_params", attention, MLP; kv = 1, ff = 4, n_linears = 2)
    model        = parameters · 2 (mixed precision; 4 with --disable-mixed-precision)
    gradients    = parameters · 4
    optimizer    = parameters · 12 ("fp32 copies of the parameters, momentum, and variance")
    activations  = s·b·h·L·((16·2 + 2) + (2·2 + 1)·a·s/h)      without --checkpoint-activations (Korthikanti's
                   34 + 5as/h, "generalized to any precision", always the low precision's 2 bytes)
                   s·b·h·L·(16·2 + 2)                           with it ("Megatron-style")
    per GPU      = activations + gradients + model + optimizer
The script prints no example output to reproduce; tests check these algebraic forms.

FLOPs: calc/calc_transformer_flops.py calc_params (read at commit 05c40662), dense, kv_size_ratio kv, over t = b·s
tokens, iter_factor 3 (forward 1, backward 2) or 4 with its default Megatron-style activation checkpointing (one
more forward):
    qkv 2·(1 + 2·kv)·L·t·h², attention matrix 2·L·t·s·h, attention over values 2·L·t·s·h, linear projection
    2·L·t·h², FFN 16·L·t·h² (two h × 4h matrices), each times iter_factor; embedding 6·t·h·V ("no activation
    checkpointing for embeddings": the LM head's matmul)
graded as flops_matmul with forward = the iter_factor-1 share (2·t·h·V for the embedding term), backward the rest.

Setup described: a GPT-NeoX/GPT-3 style model (d_ff = 4·h, two MLP matrices), mixed precision by default (our bf16
autocast) or fp32, one batch; no recomputation, or full recomputation for the FLOPs and model states alone (its
--checkpoint-activations keeps 34·s·b·h per layer, which none of our checkpointing options does). Predicts params,
the model states itemised, the matmul FLOPs and, without recomputation, saved activations and the peak (states
plus activations).
"""
from __future__ import annotations

from model.config import ModelConfig
from model.spec import StepSpec

NAME = "eleuther"
DESCRIPTION = ("EleutherAI cookbook, 1 GPU: 2 (or 4) + 4 + 12 bytes per parameter + s·b·h·L·(34 + 5as/h); "
               "FLOPs (3|4)·(2(1+2kv)+4s/h+2+16)·L·t·h² + 6thV")
SETUP = [{"arch": ("reference", "gpt2"), "dtype": "float32", "autocast": autocast, "checkpointing": ("none", "full"),
          "micro_batches": 1} for autocast in ("bfloat16", "none")]
LOW_PRECISION, HIGH_PRECISION, GRADIENT_BYTES, OPTIMIZER_BYTES = 2, 4, 4, 12


def parameters(config: ModelConfig) -> int:
    """calc_mem's total_params with kv_size_ratio 1 and the MLP as two h × ff·h matrices (ff = F/h)."""
    V, s, h, L, F = config.vocab_size, config.context_length, config.d_model, config.num_layers, config.d_ff
    return 2 * V * h + h * s + 8 * h * L + 2 * h + 2 * 2 * L * h * h + 2 * L * F * h


def activation_bytes(config: ModelConfig, batch_size: int) -> float:
    """s·b·h·L·((16·low + 2) + (2·low + 1)·a·s/h), the training case without activation checkpointing."""
    s, b, h, L, a = config.context_length, batch_size, config.d_model, config.num_layers, config.num_heads
    return s * b * h * L * ((16 * LOW_PRECISION + 2) + (2 * LOW_PRECISION + 1) * (a * s / h))


def matmul_flops(spec: StepSpec) -> dict[str, int]:
    """calc_params' dense total split into forward (one pass) and backward (the rest, recomputation included)."""
    config = spec.model
    h, s, L, V = config.d_model, config.context_length, config.num_layers, config.vocab_size
    t = spec.batch_size * s
    kv = config.kv_heads / config.num_heads
    iter_factor = 4 if spec.setup.checkpointing == "full" else 3
    per_pass = (round(2 * (1 + 2 * kv) * L * t * h * h) + 2 * (2 * L * t * s * h) + 2 * L * t * h * h
                + 16 * L * t * h * h)
    embedding = 6 * t * h * V
    forward = per_pass + embedding // 3
    return {"forward": forward, "backward": iter_factor * per_pass + embedding - forward}


def predict(spec: StepSpec) -> dict:
    config, batch_size = spec.model, spec.batch_size
    n = parameters(config)
    mixed = spec.setup.autocast != "none"
    states = {"parameters": n * (LOW_PRECISION if mixed else HIGH_PRECISION), "gradients": n * GRADIENT_BYTES,
              "optimizer_state": n * OPTIMIZER_BYTES}
    state_bytes = sum(states.values())
    figures = {"params": n, "model_states": states, "model_states_bytes": state_bytes,
               "flops_matmul": matmul_flops(spec)}
    if spec.setup.checkpointing == "none":
        activations = activation_bytes(config, batch_size)
        figures.update(saved_activations_bytes=activations, peak_bytes=state_bytes + activations)
    return figures
