"""Exact FLOPs of one training step: matmul FLOPs as FlopCounterMode counts them, elementwise FLOPs under the
convention table of profiler.measuring.flops (FLOPs per element of each aten op). Every attention option: they
differ in the attention core only (attention_core)."""
from __future__ import annotations

from analytic.sizes import Sizes
from analytic.textbook import ADAMW_FLOPS_PER_PARAM  # 14 = profiler.measuring.flops' 1+3+1+3+1+1+1+3 per element


def matmul_forward(sz: Sizes):
    """2 FLOPs per multiply-add of every mm/bmm in forward:
    1. Q, K, V, output projections: 4 · 2·B·T·D²;  2. W1, W2: 2 · 2·B·T·D·F;  3. LM head: 2·B·T·D·V;
    4. QKᵀ and P·V: 2 · 2·B·H·T²·Dh = 4·B·T²·D per layer (the causal mask halves nothing).
    Total 2·B·T·(L·(4D² + 2DF) + DV) + 4·L·B·T²·D (every attention option). Backward runs two matmuls per
    forward matmul (the gradient of each operand that needs one; token ids need none): 2× forward, and 2·B·T²·D
    more per layer with the fused SDPA kernels (attention_core).
    """
    B, T, D, F, V, L = sz.B, sz.T, sz.D, sz.F, sz.V, sz.L
    return 2 * B * T * (L * (4 * D * D + 2 * D * F) + D * V) + 4 * L * B * T * T * D


def attention_core(sz: Sizes) -> tuple:
    """(extra backward matmul, forward elementwise, backward elementwise) FLOPs of one layer's attention core.

    Explicit: ·scale (B·H·T²) and softmax (5 per element) forward; softmax backward (4) and the scale's gradient
    (1) backward. SDPA math: the same softmax and a mask add in place of the scale (B·H·T²), but q and k are
    each scaled by √scale (2·B·T·D) and their gradients too, and the add's gradient is free: 6·BHT² + 2·BTD
    forward, 4·BHT² + 2·BTD backward. Flash and memory-efficient kernels: FlopCounterMode's sdpa formulas count
    their matmuls only (no elementwise FLOPs), and the backward kernel recomputes QKᵀ: 10·B·T²·D backward
    against 2 × 4·B·T²·D, 2·B·T²·D more.
    """
    B, T, D, H = sz.B, sz.T, sz.D, sz.H
    BTD, BHTT = B * T * D, B * H * T * T
    if sz.attention in ("sdpa-flash", "sdpa-efficient"):
        return 2 * B * T * T * D, 0 * B, 0 * B
    if sz.attention == "sdpa-math":
        return 0 * B, 6 * BHTT + 2 * BTD, 4 * BHTT + 2 * BTD
    return 0 * B, 6 * BHTT, 5 * BHTT


def elementwise_forward(sz: Sizes):
    """Per RMSNorm: x² (BTD), mean (BTD read), +eps (BT), rsqrt (BT), ·rsqrt (BTD), ·gain (BTD): 4BTD + 2BT.
    Per layer: 2 RMSNorms, 2 residual adds (2BTD), the attention core's (attention_core: ·scale BHT² and
    softmax 5·BHT² explicit), silu 5·BTF; RoPE 6 ops on
    half of q and of k (6BTD). Once: position add (BTD, learned only), final RMSNorm, log-softmax 5·BTV and the
    loss's pick of one log-probability per target (BT).
    """
    B, T, D, V, L = sz.B, sz.T, sz.D, sz.V, sz.L
    BTD, BT = B * T * D, B * T
    norm = 4 * BTD + 2 * BT
    return L * layer_elementwise_forward(sz) + sz.learned * BTD + norm + 5 * B * T * V + BT


def layer_elementwise_forward(sz: Sizes):
    """One block's elementwise forward FLOPs (elementwise_forward's per-layer part)."""
    B, T, D, F = sz.B, sz.T, sz.D, sz.F
    BTD, BT = B * T * D, B * T
    return 2 * (4 * BTD + 2 * BT) + 2 * BTD + attention_core(sz)[1] + 5 * B * T * F + sz.rope * 6 * BTD


def elementwise_backward(sz: Sizes):
    """Per RMSNorm backward: 6BTD + 2BT of products, x²'s gradient BTD + BT, two reductions 2BTD, mean's
    divide BTD, the sum of its two input paths BTD: 11BTD + 3BT.
    Per layer: 2 RMSNorms, 2 residual gradient sums and 2 sums of q/k/v input gradients (4BTD), the attention
    core's (attention_core: 5·BHT² explicit), silu backward 9·BTF; RoPE: 4 products, 4 sums, 1 negation on
    halves of q and k (9BTD). Once: final RMSNorm, loss backward BT, log-softmax backward 4·BTV, the token embedding's
    scatter-add BTD; learned positions: the batch sum (BTD) and their scatter-add (TD).
    """
    B, T, D, F, V, L = sz.B, sz.T, sz.D, sz.F, sz.V, sz.L
    BTD, BT = B * T * D, B * T
    norm = 11 * BTD + 3 * BT
    layer = 2 * norm + 4 * BTD + attention_core(sz)[2] + 9 * B * T * F + sz.rope * 9 * BTD
    return L * layer + norm + BT + 4 * B * T * V + BTD + sz.learned * (BTD + T * D)


def optimizer_flops(sz: Sizes):
    """14 per parameter (weight decay 1, m lerp 3, v scale 1 and addcmul 3, sqrt 1, bias-correction divide 1,
    +eps 1, addcdiv 3) plus one step-counter increment per parameter tensor; the same for all three
    implementations under the convention (fused runs the same arithmetic in one kernel)."""
    return ADAMW_FLOPS_PER_PARAM * sz.params + sz.tensors


def recompute_flops(sz: Sizes):
    """(matmul, elementwise) FLOPs that checkpointing runs again in backward. Full: each block's forward
    (4·2·B·T·D² + 2·2·B·T·D·F of projections, 4·B·T²·D of QKᵀ and P·V, the layer's elementwise work) less its
    last matmul (W2, 2·B·T·D·F) and residual add (B·T·D), which non-reentrant checkpointing stops before, as
    nothing saved needs them. Selective: the attention core's 4·B·T²·D and the elementwise work less that
    residual add (the projections' outputs are kept). 0 without checkpointing."""
    if sz.checkpointing == "none":
        return 0 * sz.B, 0 * sz.B
    B, T, D, F, L = sz.B, sz.T, sz.D, sz.F, sz.L
    elementwise = L * (layer_elementwise_forward(sz) - B * T * D)
    if sz.checkpointing == "selective":
        return L * 4 * B * T * T * D, elementwise
    return L * (2 * B * T * (4 * D * D + 2 * D * F) + 4 * B * T * T * D - 2 * B * T * D * F), elementwise


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
