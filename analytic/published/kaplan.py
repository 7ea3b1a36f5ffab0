"""Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv 2001.08361), section 2.1 "Parameter and
Compute Scaling of Transformers", equations (2.1) and (2.2) and Table 1 (read from the paper's text as stored in
the search tool's index of public repositories).

As published: "We use N to denote the model size, which we define as the number of non-embedding parameters

    N ≈ 2·d_model·n_layer·(2·d_attn + d_ff) = 12·n_layer·d_model²  with the standard d_attn = d_ff/4 = d_model (2.1)

where we have excluded biases and other sub-leading terms" (the n_vocab·d_model embedding and n_ctx·d_model
position parameters are left out of N). "Evaluating a forward pass of the Transformer involves roughly

    C_forward ≈ 2N + 2·n_layer·n_ctx·d_model                                                        (2.2)

add-multiply operations"; Table 1 itemises it per token: Embed 4·d_model, Attention QKV 2·n_layer·d_model·3·d_attn,
Attention Mask 2·n_layer·n_ctx·d_attn, Attention Project 2·n_layer·d_attn·d_embd, Feedforward 2·n_layer·2·d_model·d_ff,
De-embed 2·d_model·n_vocab, and "Total (Non-Embedding)": C_forward = 2N + 2·n_layer·n_ctx·d_attn. "Accounting for the
backwards pass (approximately twice the compute as the forwards pass), we then define the estimated non-embedding
compute as C ≈ 6N floating point operators per training token"; the context term is dropped there because the paper
studies d_model ≫ n_ctx/12.

Encoded: per token forward C_forward (Table 1's total, context term kept: the paper gives it for the forward pass),
backward 2·C_forward; one step runs B·T tokens (n_ctx = T). d_attn = H·(D/H) = D in our model. What Table 1 leaves out
of the total and our FlopCounterMode count has: the de-embedding (LM head) 2·d_model·n_vocab per token forward; what
it counts at half ours: the attention "Mask" term 2·n_layer·n_ctx·d_attn against QKᵀ and P·V's 4·n_layer·n_ctx·D.
"""
from __future__ import annotations

from model.config import ModelConfig
from model.spec import StepSpec

NAME = "kaplan"
DESCRIPTION = ("Kaplan et al. 2020 §2.1/Table 1: N = 2·d_model·n_layer·(2·d_attn + d_ff), "
               "C_forward = 2N + 2·n_layer·n_ctx·d_attn per token, backward 2× forward (C ≈ 6N)")
# What it claims: the GPT-style decoder the paper trains (two-matrix feed-forward of width d_ff, full multi-head
# attention of width d_attn; our 'reference' and 'gpt2' blocks; llama's SwiGLU has a third FFN matrix that
# 2·d_model·d_ff does not count), model FLOPs with no recomputation, any precision and attention kernel.
SETUP = {"arch": ("reference", "gpt2"), "checkpointing": "none"}
FLOPS_PER_MULTIPLY_ADD = 2  # "the factor of two comes from the multiply-accumulate operation"
BACKWARD_OVER_FORWARD = 2  # "approximately twice the compute as the forwards pass"
TRAINING_FLOPS_PER_PARAMETER = 6  # C ≈ 6N per training token


def non_embedding_parameters(n_layer: int, d_model: int, d_attn: int, d_ff: int) -> int:
    """Equation (2.1): N = 2·d_model·n_layer·(2·d_attn + d_ff) (QKV 3·d_model·d_attn and projection
    d_attn·d_model per layer, feed-forward 2·d_model·d_ff); 12·n_layer·d_model² when d_attn = d_ff/4 = d_model."""
    return 2 * d_model * n_layer * (2 * d_attn + d_ff)


def forward_flops_per_token(n: int, n_layer: int, n_ctx: int, d_attn: int) -> int:
    """Table 1's total: C_forward = 2N + 2·n_layer·n_ctx·d_attn."""
    return FLOPS_PER_MULTIPLY_ADD * n + 2 * n_layer * n_ctx * d_attn


def de_embed_flops_per_token(d_model: int, n_vocab: int) -> int:
    """Table 1's De-embed row, 2·d_model·n_vocab, which the non-embedding total leaves out."""
    return 2 * d_model * n_vocab


def training_flops_per_token(n: int) -> int:
    """The paper's training estimate C ≈ 6N per token (context-dependent terms dropped)."""
    return TRAINING_FLOPS_PER_PARAMETER * n


def parameters(config: ModelConfig) -> int:
    """N of equation (2.1) for our model: d_attn = num_heads·head_dim (= d_model), d_ff = config.d_ff."""
    return non_embedding_parameters(config.num_layers, config.d_model, config.num_heads * config.head_dim,
                                    config.d_ff)


def predict(spec: StepSpec) -> dict:
    """params = N; flops_matmul: C_forward per token × B·T tokens forward, twice that backward. The optimizer
    plays no part."""
    config, batch_size = spec.model, spec.batch_size
    n = parameters(config)
    tokens = batch_size * config.context_length
    forward = forward_flops_per_token(n, config.num_layers, config.context_length,
                                      config.num_heads * config.head_dim) * tokens
    return {"params": n, "flops_matmul": {"forward": forward, "backward": BACKWARD_OVER_FORWARD * forward}}
