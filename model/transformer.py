"""The Transformer LM, in the spirit of nanoGPT's model.py: one block, its pieces chosen by config.arch.

  reference  RMSNorm, SiLU FFN, no biases, untied LM head (the reference block)
  gpt2       LayerNorm with bias, GELU (tanh), biases on every linear layer, dropout after the embeddings, on
             the attention probabilities and after each sublayer, LM head tied to the token embedding
  llama      RMSNorm computed in float32 (Meta's reference code), SwiGLU FFN w2(silu(w1 x) · w3 x), RoPE,
             grouped-query attention: kv_heads key/value heads, each repeated for H / kv_heads query heads
             (repeat_kv, as Hugging Face's eager and masked-SDPA paths do)
Every component the textbook accounting has a term for is its own named module (norm1, q_proj, k_proj, v_proj,
scores, softmax, weighted_sum, out_proj, norm2, w1, silu, w2, final_norm, lm_head, cross_entropy, and gelu, w3,
gating, the dropouts, repeat_kv where the arch has them), so that the profiler can attribute saved tensors and
FLOPs by module path. Shapes: B batch, T tokens, D d_model, H heads, G kv_heads, Dh = D/H head size, F d_ff,
V vocabulary.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from model.autocast import with_autocast_emulation
from model.config import ModelConfig
from model.setup import Setup

# Selective checkpointing (Korthikanti et al. 2022, section 4.1): keep what the matmuls of the linear layers
# produce, recompute the attention core (QKᵀ, scale, mask, softmax, P·V) and every elementwise op.
SELECTIVE_SAVES = frozenset({torch.ops.aten.mm.default, torch.ops.aten.addmm.default})


def selective_policy(ctx, op, *args, **kwargs):
    return CheckpointPolicy.MUST_SAVE if op in SELECTIVE_SAVES else CheckpointPolicy.PREFER_RECOMPUTE


def checkpointed(mode: str):
    """The function that runs a block: directly, or under torch.utils.checkpoint (non-reentrant), whose
    recomputation re-enters the autocast emulation where one is active (as checkpoint re-enters torch.autocast)."""
    if mode == "none":
        return lambda block, *args: block(*args)
    contexts = functools.partial(create_selective_checkpoint_contexts, selective_policy) if mode == "selective" \
        else None
    return lambda block, *args: checkpoint(block, *args, use_reentrant=False,
                                           context_fn=with_autocast_emulation(contexts))


def attend(q, k, v, scale: float, dropout: float = 0.0):
    """Causal F.scaled_dot_product_attention on [B, H, T, Dh]: the kernel is the setup's attention option, chosen
    where the step runs (model.cuda_kernels.kernel_region: sdpa_kernel on CUDA and CPU, the CUDA kernel's own aten op
    on meta)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale)


def repeat_kv(x, groups: int):
    """[B, G, T, Dh] -> [B, G·groups, T, Dh]: each key/value head repeated for its group of query heads."""
    B, G, T, Dh = x.shape
    return x[:, :, None].expand(B, G, groups, T, Dh).reshape(B, G * groups, T, Dh)


class Op(nn.Module):
    """A stateless function as a named module: its saved tensors and FLOPs are attributed to its name."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · g, written out so that it runs the same ops on every device; with `upcast`
    (llama) normalised in float32 and cast back before the gain, as Meta's Llama code does."""

    def __init__(self, d_model: int, eps: float = 1e-5, upcast: bool = False):
        super().__init__()
        self.eps, self.upcast = eps, upcast
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):  # [B, T, D] -> [B, T, D]
        if self.upcast:
            y = x.float()
            return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # [B, T, 1]
        return x * rms * self.weight


def norm(config: ModelConfig, d_model: int) -> nn.Module:
    return nn.LayerNorm(d_model) if config.arch == "gpt2" else RMSNorm(d_model, upcast=config.arch == "llama")


def dropout_op(config: ModelConfig) -> Op | None:
    """A dropout of the arch (gpt2 with dropout > 0), or None: F.dropout in training, which CUDA runs as
    native_dropout, keeping a bool mask for backward (model.cuda_kernels runs it so on every device)."""
    return Op(lambda x: F.dropout(x, config.dropout)) if config.dropout else None  # F.dropout looked up at each call


def rotate(x, cos, sin):
    """RoPE on [B, H, T, Dh]: rotate each (even, odd) pair of features by a position-dependent angle."""
    x1, x2 = x[..., ::2], x[..., 1::2]  # [B, H, T, Dh/2] each
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, attention: str):
        super().__init__()
        d, self.head_dim, self.attention = config.d_model, config.head_dim, attention
        bias, kv = config.arch == "gpt2", config.kv_width
        self.q_proj = nn.Linear(d, d, bias=bias)
        self.k_proj = nn.Linear(d, kv, bias=bias)
        self.v_proj = nn.Linear(d, kv, bias=bias)
        self.rope = Op(rotate) if config.positional == "rope" else None
        groups = config.num_heads // config.kv_heads
        self.repeat_kv = Op(functools.partial(repeat_kv, groups=groups)) if groups > 1 else None
        scale = 1.0 / math.sqrt(config.head_dim)
        self.scores = Op(lambda q, k, future: (q @ k.transpose(-2, -1) * scale).masked_fill(future, float("-inf")))
        self.softmax = Op(lambda scores: torch.softmax(scores, dim=-1))
        self.probs_dropout = dropout_op(config)
        self.weighted_sum = Op(lambda probs, v: probs @ v)
        self.sdpa = Op(functools.partial(attend, scale=scale, dropout=config.dropout))
        self.out_proj = nn.Linear(d, d, bias=bias)
        self.out_dropout = dropout_op(config)

    def forward(self, x, future, cos=None, sin=None):  # x [B, T, D]; future [T, T] bool, True above the diagonal
        # heads counted from the projections' width: H and G, or H/t and G/t of them split by tensor parallelism
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # [B, G, T, Dh]
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        if self.rope is not None:
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        if self.repeat_kv is not None:
            k, v = self.repeat_kv(k), self.repeat_kv(v)  # [B, H, T, Dh]
        if self.attention != "explicit":
            y = self.sdpa(q, k, v)  # [B, H, T, Dh]
        else:
            probs = self.softmax(self.scores(q, k, future))  # [B, H, T, T]
            if self.probs_dropout is not None:
                probs = self.probs_dropout(probs)
            y = self.weighted_sum(probs, v)  # [B, H, T, Dh]
        y = self.out_proj(y.transpose(1, 2).contiguous().view(B, T, -1))  # [B, T, H·Dh]
        return y if self.out_dropout is None else self.out_dropout(y)


class FeedForward(nn.Module):
    """w2(act(w1 x)): act silu (reference) or GELU's tanh form (gpt2); llama's SwiGLU w2(silu(w1 x) · w3 x)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        bias = config.arch == "gpt2"
        self.w1 = nn.Linear(config.d_model, config.d_ff, bias=bias)
        self.gelu = Op(functools.partial(F.gelu, approximate="tanh")) if config.arch == "gpt2" else None
        self.silu = Op(F.silu) if config.arch != "gpt2" else None
        self.w3 = nn.Linear(config.d_model, config.d_ff, bias=False) if config.arch == "llama" else None
        self.gating = Op(torch.mul) if config.arch == "llama" else None
        self.w2 = nn.Linear(config.d_ff, config.d_model, bias=bias)
        self.ffn_dropout = dropout_op(config)

    def forward(self, x):  # [B, T, D] -> [B, T, F] -> [B, T, D]
        hidden = (self.gelu or self.silu)(self.w1(x))
        if self.w3 is not None:
            hidden = self.gating(hidden, self.w3(x))
        y = self.w2(hidden)
        return y if self.ffn_dropout is None else self.ffn_dropout(y)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, setup: Setup):
        super().__init__()
        self.norm1 = norm(config, config.d_model)
        self.attn = CausalSelfAttention(config, setup.attention)
        self.norm2 = norm(config, config.d_model)
        self.ffn = FeedForward(config)
        # Named modules, so that the profiler sees what checkpointing keeps (the block's input, saved by
        # `checkpoint`) and when the block's ops run again in backward (each call of `body`).
        self.checkpoint = Op(checkpointed(setup.checkpointing))
        self.body = Op(self.layers)

    def forward(self, x, future, cos=None, sin=None):
        return self.checkpoint(self.body, x, future, cos, sin)

    def layers(self, x, future, cos=None, sin=None):
        x = x + self.attn(self.norm1(x), future, cos, sin)
        return x + self.ffn(self.norm2(x))


class TransformerLM(nn.Module):
    """The model `config` in the setup's attention, checkpointing and dtype."""

    def __init__(self, config: ModelConfig, setup: Setup):
        super().__init__()
        self.config = config
        T, d = config.context_length, config.d_model
        self.embedding = nn.Embedding(config.vocab_size, d)
        self.position_embedding = nn.Embedding(T, d) if config.positional == "learned" else None
        self.embedding_dropout = dropout_op(config)
        self.blocks = nn.ModuleList(Block(config, setup) for _ in range(config.num_layers))
        self.final_norm = norm(config, d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        if config.arch == "gpt2":
            self.lm_head.weight = self.embedding.weight  # tied: one parameter, its gradient summed from both
        self.cross_entropy = Op(lambda logits, targets: F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        # Buffers: made once, so that no step allocates them again.
        self.register_buffer("future", torch.ones(T, T, dtype=torch.bool).triu(1), persistent=False)
        self.register_buffer("positions", torch.arange(T), persistent=False)
        if config.positional == "rope":
            angles = torch.outer(torch.arange(T).float(),
                                 10000.0 ** (-torch.arange(0, config.head_dim, 2).float() / config.head_dim))
            self.register_buffer("cos", angles.cos(), persistent=False)  # [T, Dh/2]
            self.register_buffer("sin", angles.sin(), persistent=False)
        else:
            self.cos = self.sin = None
        self.to(getattr(torch, setup.dtype))

    def forward(self, tokens):  # [B, T] int64 -> logits [B, T, V]
        T = tokens.shape[1]
        if T > self.config.context_length:
            raise ValueError(f"sequence of {T} tokens is longer than context_length={self.config.context_length}")
        x = self.embedding(tokens)
        if self.position_embedding is not None:
            x = x + self.position_embedding(self.positions[:T])
        if self.embedding_dropout is not None:
            x = self.embedding_dropout(x)
        cos, sin = (self.cos[:T], self.sin[:T]) if self.cos is not None else (None, None)
        for block in self.blocks:
            x = block(x, self.future[:T, :T], cos, sin)
        return self.lm_head(self.final_norm(x))

    def loss(self, tokens, targets):  # mean cross-entropy of next-token prediction, a 0-dim tensor
        return self.cross_entropy(self(tokens), targets)
