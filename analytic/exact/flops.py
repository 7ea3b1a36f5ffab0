"""Exact FLOPs of one training step: matmul FLOPs as FlopCounterMode counts them, elementwise FLOPs under the
convention table of profiler.measuring.flops (FLOPs per element of each aten op). Every arch and attention option:
they differ in the block's pieces (norm, FFN, biases, dropout, key/value width) and the attention core.

Sizes: B batch (of one micro-batch), T tokens, D d_model, H heads, K = G·D/H the key/value width (D without
grouped-query attention), F d_ff, V vocabulary, L layers.
"""
from __future__ import annotations

from analytic.sizes import Sizes
from analytic.textbook import ADAMW_FLOPS_PER_PARAM  # 14 = profiler.measuring.flops' 1+3+1+3+1+1+1+3 per element


def layer_matmul_forward(sz: Sizes):
    """One block's forward matmuls, 2 FLOPs per multiply-add (biases' adds are not counted by FlopCounterMode's
    addmm): Q and O 2·2·B·T·D², K and V 2·2·B·T·D·K (K = sz.K), the FFN's 2 or 3 (llama's W3) matrices
    2·B·T·D·F each, QKᵀ and P·V 2·2·B·H·T²·Dh = 4·B·T²·D (every attention option; the causal mask halves
    nothing)."""
    B, T, D, F = sz.B, sz.T, sz.D, sz.F
    ffn_matrices = 3 if sz.arch == "llama" else 2
    return 2 * B * T * (2 * D * D + 2 * D * sz.K + ffn_matrices * D * F) + 4 * B * T * T * D


def matmul_forward(sz: Sizes):
    """L blocks and the LM head 2·B·T·D·V: reference 2·B·T·(L·(4D² + 2DF) + DV) + 4·L·B·T²·D. Backward runs
    two matmuls per forward matmul (the gradient of each operand that needs one; token ids need none): 2× forward,
    and 2·B·T²·D more per layer with the fused SDPA kernels (attention_core)."""
    return sz.L * layer_matmul_forward(sz) + 2 * sz.B * sz.T * sz.D * sz.V


def attention_core(sz: Sizes) -> tuple:
    """(extra backward matmul, forward elementwise, backward elementwise) FLOPs of one layer's attention core.

    Explicit: ·scale (B·H·T²) and softmax (5 per element) forward; softmax backward (4) and the scale's gradient
    (1) backward; gpt2's dropout on the probabilities 2 per element each way. SDPA math: the same softmax and a
    mask add in place of the scale (B·H·T²), but q and k are each scaled by √scale (2·B·T·D) and their gradients
    too, and the add's gradient is free: 6·BHT² + 2·BTD forward, 4·BHT² + 2·BTD backward. Flash and
    memory-efficient kernels: FlopCounterMode's sdpa formulas count their matmuls only (no elementwise FLOPs,
    dropout inside the kernel included), and the backward kernel recomputes QKᵀ: 10·B·T²·D backward against
    2 × 4·B·T²·D, 2·B·T²·D more.
    """
    B, T, D, H = sz.B, sz.T, sz.D, sz.H
    BTD, BHTT = B * T * D, B * H * T * T
    if sz.attention in ("sdpa-flash", "sdpa-efficient"):
        return 2 * B * T * T * D, 0 * B, 0 * B
    if sz.attention == "sdpa-math":
        return 0 * B, 6 * BHTT + 2 * BTD, 4 * BHTT + 2 * BTD
    dropout = 2 * BHTT * int(sz.dropout)
    return 0 * B, 6 * BHTT + dropout, 5 * BHTT + dropout


def norm_forward(sz: Sizes):
    """RMSNorm: x² (BTD), mean (BTD read), +eps (BT), rsqrt (BT), ·rsqrt (BTD), ·gain (BTD): 4BTD + 2BT (llama's
    float32 casts count nothing). gpt2's LayerNorm, one native_layer_norm: 7 per element (mean, subtract,
    square, variance, normalise, gain, bias; the per-row divides and rsqrt not counted): 7BTD."""
    BTD, BT = sz.B * sz.T * sz.D, sz.B * sz.T
    return 7 * BTD if sz.arch == "gpt2" else 4 * BTD + 2 * BT


def norm_backward(sz: Sizes):
    """RMSNorm: 6BTD + 2BT of products, x²'s gradient BTD + BT, two reductions 2BTD, mean's divide BTD, the sum
    of its two input paths BTD: 11BTD + 3BT. LayerNorm, one native_layer_norm_backward: 14 per element (input
    gradient 11, gain 2, bias 1): 14BTD."""
    BTD, BT = sz.B * sz.T * sz.D, sz.B * sz.T
    return 14 * BTD if sz.arch == "gpt2" else 11 * BTD + 3 * BT


def layer_elementwise_forward(sz: Sizes):
    """One block's elementwise forward FLOPs: 2 norms, 2 residual adds (2BTD), the attention core's, the FFN's
    activation (silu 5·BTF, gpt2's GELU 9·BTF) and llama's gating product (BTF), RoPE's 6 ops on half of q and
    of k (3BTD + 3BTK), gpt2's dropouts after out_proj and w2 (2 per element each: 4BTD)."""
    B, T, D, F = sz.B, sz.T, sz.D, sz.F
    BTD, BTF = B * T * D, B * T * F
    activation = 9 * BTF if sz.arch == "gpt2" else 5 * BTF + (BTF if sz.arch == "llama" else 0)
    return (2 * norm_forward(sz) + 2 * BTD + attention_core(sz)[1] + activation
            + sz.rope * 3 * (BTD + B * T * sz.K) + int(sz.dropout) * 4 * BTD)


def elementwise_forward(sz: Sizes):
    """L blocks; once: the position add (BTD, learned only), gpt2's embedding dropout (2BTD), the final norm,
    log-softmax 5·BTV and the loss's pick of one log-probability per target (BT)."""
    B, T, D, V = sz.B, sz.T, sz.D, sz.V
    BTD, BT = B * T * D, B * T
    return (sz.L * layer_elementwise_forward(sz) + sz.learned * BTD + int(sz.dropout) * 2 * BTD
            + norm_forward(sz) + 5 * B * T * V + BT)


def layer_elementwise_backward(sz: Sizes):
    """One block's elementwise backward FLOPs: 2 norms, 2 residual gradient sums and 2 sums of the q/k/v input
    gradients (4BTD), the attention core's, the activation's (silu 9·BTF, GELU 18·BTF), llama's gating
    product's two (2BTF) and the sum of W1's and W3's input gradients (BTD), RoPE's 4 products, 4 sums,
    1 negation on halves of q and k (4.5·(BTD + BTK)),
    repeat_kv's sums of each key/value head's gradients over its group (2BTD, grouped-query attention only),
    gpt2's bias gradients (sums over B·T: 4BTD + BTF + BTD) and dropouts (2 per element: 4BTD)."""
    B, T, D, F = sz.B, sz.T, sz.D, sz.F
    BTD, BTF = B * T * D, B * T * F
    gpt2, llama = sz.arch == "gpt2", sz.arch == "llama"
    activation = 18 * BTF if gpt2 else 9 * BTF + (2 * BTF + BTD if llama else 0)
    rope = sz.rope * 9 * (BTD + B * T * sz.K) // 2
    grouped = 2 * BTD * ((sz.G != sz.H) * 1)  # G <= H: != is < (a bool, or an array of them, as an integer)
    biases = (5 * BTD + BTF) if gpt2 else 0
    return (2 * norm_backward(sz) + 4 * BTD + attention_core(sz)[2] + activation + rope + grouped + biases
            + int(sz.dropout) * 4 * BTD)


def elementwise_backward(sz: Sizes):
    """L blocks; once: the final norm, loss backward BT, log-softmax backward 4·BTV, gpt2's embedding dropout
    (2BTD), the token embedding's scatter-add BTD; learned positions: the batch sum (BTD) and their scatter-add
    (TD); gpt2's tied weight: the embedding's gradient added to the LM head's (VD)."""
    B, T, D, V = sz.B, sz.T, sz.D, sz.V
    BTD, BT = B * T * D, B * T
    tied = V * D if sz.arch == "gpt2" else 0 * B
    return (sz.L * layer_elementwise_backward(sz) + norm_backward(sz) + BT + 4 * B * T * V + BTD
            + int(sz.dropout) * 2 * BTD + sz.learned * (BTD + T * D) + tied)


def optimizer_flops(sz: Sizes):
    """14 per parameter (weight decay 1, m lerp 3, v scale 1 and addcmul 3, sqrt 1, bias-correction divide 1,
    +eps 1, addcdiv 3) plus one step-counter increment per parameter tensor; the same for all three
    implementations under the convention (fused runs the same arithmetic in one kernel)."""
    return ADAMW_FLOPS_PER_PARAM * sz.params + sz.tensors


def recompute_flops(sz: Sizes):
    """(matmul, elementwise) FLOPs that checkpointing runs again in backward. Full: each block's forward less
    what non-reentrant checkpointing stops before, as nothing saved needs it: the residual add (B·T·D) and,
    unless gpt2's dropout follows it (its mask is saved), the last matmul (W2, 2·B·T·D·F). Selective: the
    attention core's 4·B·T²·D and the elementwise work less that residual add (the projections' outputs are
    kept). 0 without checkpointing."""
    if sz.checkpointing == "none":
        return 0 * sz.B, 0 * sz.B
    B, T, D, F, L = sz.B, sz.T, sz.D, sz.F, sz.L
    elementwise = L * (layer_elementwise_forward(sz) - B * T * D)
    if sz.checkpointing == "selective":
        return L * 4 * B * T * T * D, elementwise
    last_matmul = 0 if sz.dropout else 2 * B * T * D * F
    return L * (layer_matmul_forward(sz) - last_matmul), elementwise


def flop_figures(sz: Sizes) -> dict:
    """FLOPs per phase of a step of k = sz.micro_batches micro-batches of sz.B sequences: k times each
    micro-batch's forward and backward, each with the loss's division by k (1 FLOP, and 1 for its gradient),
    plus one add per parameter element each time a micro-batch's weight gradients are added into existing .grad
    (k - 1 times, k with zero_grad 'zeros'); one AdamW step."""
    k = sz.micro_batches
    accumulations = k - 1 + int(sz.zero_grad == "zeros")
    forward = matmul_forward(sz)
    backward = 2 * forward + sz.L * attention_core(sz)[0]
    recompute_matmul, recompute_elementwise = recompute_flops(sz)
    recompute = recompute_matmul + recompute_elementwise
    return {"flops": {"forward": k * (forward + elementwise_forward(sz) + 1),
                      "backward": k * (backward + elementwise_backward(sz) + recompute + 1)
                      + accumulations * sz.params,
                      "optimizer": optimizer_flops(sz), "recompute": k * recompute},
            "flops_matmul": {"forward": k * forward, "backward": k * (backward + recompute_matmul)},
            "adamw_flops_per_param": optimizer_flops(sz) / sz.params}
