"""Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv 2205.05198,
MLSys 2023): the activation memory of a GPT layer, on one GPU (tensor and pipeline parallel size 1, no sequence
parallelism).

Section 4.1 counts, in bytes, what one transformer layer stores for backward, activations in 16-bit floats and
dropout masks in one byte (s = T sequence length, b = B micro-batch, h = D hidden size, a = H heads):
    attention block   11·s·b·h + 5·a·s²·b   the QKV input 2sbh, Q and K 4sbh, softmax output 2as²b, its dropout
                                            mask as²b and output 2as²b, V 2sbh, the output projection's input
                                            2sbh and its dropout mask sbh
    MLP               19·s·b·h              first linear's input 2sbh, GeLU's input 8sbh, second linear's input
                                            8sbh, dropout mask sbh
    layer norms        4·s·b·h              each norm's input 2sbh
    per layer         s·b·h·(34 + 5·a·s/h)  (equation 1; Table 2, "no parallelism")
Table 2's single-GPU rows: selective activation recomputation (the attention core, QKᵀ through the attention over
V, recomputed in backward) keeps 34·s·b·h, and full activation recomputation 2·s·b·h (each layer's input). The
paper's totals multiply by L and leave the embeddings, the final norm, the LM head and the loss out of Table 2
(section 4.3 calls them small); so does this set: saved_activations_per_layer_bytes is the paper's per-layer
count, saved_activations_bytes L times it.

Setup described: Megatron's GPT layer (LayerNorm, GeLU, biases, dropout on the attention probabilities and after
each sub-layer: our `gpt2` arch with dropout) with 16-bit activations (our pure bf16). Recomputation: none with
the s² scores kept (explicit attention); the fused SDPA kernels keep no s² tensor and recompute the attention core
inside their backward, which is what selective recomputation does, so they are graded against its 34·s·b·h (our
reading, not the paper's); full checkpointing. Not our `selective` checkpointing, which is another policy (it
keeps the matmuls' outputs and recomputes everything else, torch's selective activation checkpointing).
"""
from __future__ import annotations

from model.spec import StepSpec

NAME = "korthikanti"
DESCRIPTION = ("Korthikanti et al. 2022 (arXiv 2205.05198), Table 2 at t = 1: saved activations "
               "L·sbh(34 + 5as/h), 34·sbh·L with selective recomputation or a fused kernel, 2·sbh·L with full")
# GPT-2's dropout 0.1 (any p > 0 keeps the same masks; without dropout a layer keeps 50·s·b·h fewer bytes at GPT-2
# XL's size, and the set does not describe it)
_GPT_16BIT = {"arch": "gpt2", "dropout": 0.1, "dtype": "bfloat16", "autocast": "none", "micro_batches": 1}
SETUP = [
    {**_GPT_16BIT, "attention": ("explicit", "sdpa-flash", "sdpa-efficient"), "checkpointing": "none"},
    {**_GPT_16BIT, "attention": ("explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient"), "checkpointing": "full"},
]
NO_RECOMPUTATION = 34  # s·b·h bytes per layer besides the 5·a·s²·b of the scores (equation 1)
SELECTIVE = 34  # Table 2, "selective activation recomputation" at t = 1: what the fused kernels keep
FULL = 2  # Table 2, "full activation recomputation": each layer's 16-bit input


def per_layer_bytes(spec: StepSpec) -> int:
    """Bytes one layer keeps for backward: sbh·(34 + 5as/h) with the scores kept, 34·sbh with a fused kernel,
    2·sbh with full recomputation."""
    config, setup = spec.model, spec.setup
    s, b, h, a = config.context_length, spec.batch_size, config.d_model, config.num_heads
    if setup.checkpointing == "full":
        return FULL * s * b * h
    if setup.attention != "explicit":
        return SELECTIVE * s * b * h
    return NO_RECOMPUTATION * s * b * h + 5 * a * s * s * b


def predict(spec: StepSpec) -> dict:
    """saved activations per layer and L times it; nothing else (the paper sizes activations only)."""
    config = spec.model
    per_layer = per_layer_bytes(spec)
    return {"saved_activations_per_layer_bytes": per_layer, "saved_activations_bytes": config.num_layers * per_layer}
