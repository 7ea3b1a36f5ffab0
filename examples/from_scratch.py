"""A Transformer language model and AdamW written from scratch, the way a course's students write them (Stanford
CS336, assignment 1): every layer its own module over plain tensors, torch.nn only for Module and Parameter.

    python -m profiler measure --model examples/from_scratch.py:build \
        --optimizer-class examples/from_scratch.py:AdamW --preset gpt2-small

The model: token embedding, pre-norm blocks (RMSNorm, causal multi-head self-attention with RoPE on queries and
keys, RMSNorm, SwiGLU feed-forward), a final RMSNorm and an untied LM head; no biases, no dropout.
"""
import math

import torch
import torch.nn as nn


class Linear(nn.Module):
    """y = x W^T, no bias; W initialised from a truncated normal of variance 2 / (d_in + d_out)."""

    def __init__(self, in_features, out_features):
        super().__init__()
        std = math.sqrt(2 / (in_features + out_features))
        weight = torch.empty(out_features, in_features)
        self.weight = nn.Parameter(nn.init.trunc_normal_(weight, std=std, a=-3 * std, b=3 * std))

    def forward(self, x):
        return torch.einsum("...i,oi->...o", x, self.weight)


class Embedding(nn.Module):
    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        weight = torch.empty(num_embeddings, embedding_dim)
        self.weight = nn.Parameter(nn.init.trunc_normal_(weight, std=1, a=-3, b=3))

    def forward(self, token_ids):
        return self.weight[token_ids]


class RMSNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        rms = torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x / rms * self.weight).to(dtype)


def softmax(x, dim):
    x = x - x.max(dim=dim, keepdim=True).values
    exp = torch.exp(x)
    return exp / exp.sum(dim=dim, keepdim=True)


def silu(x):
    return x * torch.sigmoid(x)


def scaled_dot_product_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(d_k)) v, with -inf where mask is False."""
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("...qk,...kd->...qd", softmax(scores, dim=-1), v)


class RotaryPositionalEmbedding(nn.Module):
    """Rotates each pair (x[2i], x[2i+1]) of a head by the angle position / theta^(2i / d_k)."""

    def __init__(self, theta, d_k, max_seq_len):
        super().__init__()
        frequencies = theta ** (-torch.arange(0, d_k, 2) / d_k)
        angles = torch.outer(torch.arange(max_seq_len), frequencies)
        self.register_buffer("cos", torch.cos(angles), persistent=False)
        self.register_buffer("sin", torch.sin(angles), persistent=False)

    def forward(self, x, token_positions):
        cos, sin = self.cos[token_positions], self.sin[token_positions]
        even, odd = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rotated.flatten(-2)


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads, rope):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj, self.k_proj = Linear(d_model, d_model), Linear(d_model, d_model)
        self.v_proj, self.output_proj = Linear(d_model, d_model), Linear(d_model, d_model)
        self.rope = rope

    def heads(self, x):  # [B, T, D] -> [B, H, T, D / H]
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, x):
        batch, length, d_model = x.shape
        positions = torch.arange(length, device=x.device)
        q = self.rope(self.heads(self.q_proj(x)), positions)
        k = self.rope(self.heads(self.k_proj(x)), positions)
        v = self.heads(self.v_proj(x))
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=x.device))
        y = scaled_dot_product_attention(q, k, v, causal)
        return self.output_proj(y.transpose(1, 2).reshape(batch, length, d_model))


class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.w1, self.w2, self.w3 = Linear(d_model, d_ff), Linear(d_ff, d_model), Linear(d_model, d_ff)

    def forward(self, x):
        return self.w2(silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, rope):
        super().__init__()
        self.ln1, self.attn = RMSNorm(d_model), MultiHeadSelfAttention(d_model, num_heads, rope)
        self.ln2, self.ffn = RMSNorm(d_model), SwiGLU(d_model, d_ff)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class TransformerLM(nn.Module):
    def __init__(self, vocab_size, context_length, num_layers, d_model, num_heads, d_ff, rope_theta=10000.0):
        super().__init__()
        rope = RotaryPositionalEmbedding(rope_theta, d_model // num_heads, context_length)
        self.token_embeddings = Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(TransformerBlock(d_model, num_heads, d_ff, rope) for _ in range(num_layers))
        self.ln_final = RMSNorm(d_model)
        self.lm_head = Linear(d_model, vocab_size)

    def forward(self, token_ids):  # [B, T] -> logits [B, T, V]
        x = self.token_embeddings(token_ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.ln_final(x))


def build(vocab_size, context_length, num_layers, d_model, num_heads, d_ff):
    return TransformerLM(vocab_size, context_length, num_layers, d_model, num_heads, d_ff)


class AdamW(torch.optim.Optimizer):
    """AdamW (Loshchilov and Hutter), one parameter at a time: moments m and v and the step count t in each
    parameter's state, bias-corrected step size, weight decay decoupled from the gradient."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["t"] += 1
                t, grad = state["t"], p.grad
                state["m"] = beta1 * state["m"] + (1 - beta1) * grad
                state["v"] = beta2 * state["v"] + (1 - beta2) * grad ** 2
                alpha = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                p -= alpha * state["m"] / (torch.sqrt(state["v"]) + eps)
                p -= lr * weight_decay * p
        return loss
