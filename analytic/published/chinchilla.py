"""Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (Chinchilla, arXiv 2203.15556),
Appendix F "FLOPs computation" and Table A4 (read from the paper's text as stored in the search tool's index of
public repositories).

As published: "We include all training FLOPs, including those contributed to by the embedding matrices, in our
analysis. Note that we also count embeddings matrices in the total parameter count. [...] We use a factor of 2 to
describe the multiply accumulate cost. For the forward pass, we consider contributions from:
    Embeddings                          2 × seq_len × vocab_size × d_model
    Attention (Single Layer)
      Key, query and value projections  2 × 3 × seq_len × d_model × (key_size × num_heads)
      Key @ Query logits                2 × seq_len × seq_len × (key_size × num_heads)
      Softmax                           3 × num_heads × seq_len × seq_len
      Softmax @ query reductions        2 × seq_len × seq_len × (key_size × num_heads)
      Final Linear                      2 × seq_len × (key_size × num_heads) × d_model
    Dense Block (Single Layer)          2 × seq_len × (d_model × ffw_size + d_model × ffw_size)
    Final Logits                        2 × seq_len × d_model × vocab_size
    Total forward pass FLOPs: embeddings + num_layers × (total attention + dense_block) + logits
As in Kaplan et al. (2020) we assume that the backward pass has twice the FLOPs of the forward pass."

Encoded as published, per sequence of seq_len = T tokens, B sequences a step; key_size = head_dim, so
key_size·num_heads = D; backward = 2 × forward. N = every parameter, embeddings included (parameter_count).
The published total holds two terms FlopCounterMode does not count as matmuls: the embeddings' 2·T·V·D (a lookup)
and the softmax's 3·H·T²; its attention logits and reductions are full T² (no causal halving), as ours.

Table A4 ("the ratio of the FLOPs that we compute per sequence to that using the 6ND approximation": 1.03, 1.10,
1.08, 1.04, 1.03, 0.99 for six models) is reproduced only WITHOUT the embeddings and final-logits terms: karpathy/
nanoGPT scaling_laws.ipynb (read at commit 3adf61e1) found the same ("per author correspondence
apparently there is typo in the paper, they do not count embeddings and logits to repro table 4"); forward_flops(...,
embeddings_and_logits=False) gives that variant (tests/test_published_chinchilla.py). predict() keeps the text.
"""
from __future__ import annotations

from analytic.params import parameter_count
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "chinchilla"
DESCRIPTION = ("Hoffmann et al. 2022 App. F: per sequence 2TVD embeddings + L·(QKV 6TD·kH + logits 2T²·kH + "
               "softmax 3HT² + reductions 2T²·kH + final linear 2T·kH·D + dense 4TDF) + logits 2TDV, backward 2×")
# What it claims: the dense decoder of the paper's models (a two-matrix dense block of ffw_size = 4·d_model, full
# multi-head attention: our 'reference' and 'gpt2'; llama's SwiGLU third matrix and grouped K/V are not in it),
# every training FLOP of a step without recomputation, any precision and attention kernel.
SETUP = {"arch": ("reference", "gpt2"), "checkpointing": "none"}
FLOPS_PER_MULTIPLY_ADD = 2  # "a factor of 2 to describe the multiply accumulate cost"
SOFTMAX_FLOPS = 3  # per element of the num_heads × seq_len × seq_len logits
BACKWARD_OVER_FORWARD = 2  # "the backward pass has twice the FLOPs of the forward pass"


def attention_flops(seq_len: int, d_model: int, key_size: int, num_heads: int) -> int:
    """One layer's attention: QKV projections + key@query logits + softmax + softmax@query reductions + final
    linear, each as published above."""
    width = key_size * num_heads
    return (2 * 3 * seq_len * d_model * width + 2 * seq_len * seq_len * width
            + SOFTMAX_FLOPS * num_heads * seq_len * seq_len + 2 * seq_len * seq_len * width
            + 2 * seq_len * width * d_model)


def dense_block_flops(seq_len: int, d_model: int, ffw_size: int) -> int:
    """One layer's dense block: 2 × seq_len × (d_model × ffw_size + d_model × ffw_size)."""
    return 2 * seq_len * (d_model * ffw_size + d_model * ffw_size)


def embedding_flops(seq_len: int, vocab_size: int, d_model: int) -> int:
    """Embeddings (2 × seq_len × vocab_size × d_model); the final logits are the same product."""
    return 2 * seq_len * vocab_size * d_model


def forward_flops(seq_len: int, vocab_size: int, d_model: int, num_heads: int, key_size: int, ffw_size: int,
                  num_layers: int, embeddings_and_logits: bool = True) -> int:
    """Total forward FLOPs of one sequence: embeddings + num_layers × (attention + dense block) + logits;
    embeddings_and_logits=False drops the first and last terms (what reproduces Table A4)."""
    layers = num_layers * (attention_flops(seq_len, d_model, key_size, num_heads)
                           + dense_block_flops(seq_len, d_model, ffw_size))
    ends = 2 * embedding_flops(seq_len, vocab_size, d_model) if embeddings_and_logits else 0
    return layers + ends


def training_flops(*args, **kwargs) -> int:
    """Forward + backward of one sequence: 3 × forward_flops(...)."""
    return (1 + BACKWARD_OVER_FORWARD) * forward_flops(*args, **kwargs)


def sequence_forward_flops(config: ModelConfig) -> int:
    """forward_flops for our model: seq_len = T, key_size = head_dim, ffw_size = d_ff."""
    return forward_flops(config.context_length, config.vocab_size, config.d_model, config.num_heads,
                         config.head_dim, config.d_ff, config.num_layers)


def predict(spec: StepSpec) -> dict:
    """params: every parameter (the paper counts the embedding matrices); flops_matmul: B sequences of the
    published forward total, twice that backward. The optimizer plays no part."""
    config, batch_size = spec.model, spec.batch_size
    forward = batch_size * sequence_forward_flops(config)
    return {"params": parameter_count(config),
            "flops_matmul": {"forward": forward, "backward": BACKWARD_OVER_FORWARD * forward}}
