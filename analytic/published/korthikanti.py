"""Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv 2205.05198,
MLSys 2023): the activation memory of a GPT layer on one GPU of a tensor-parallel group of t (pipeline parallel
size 1), with and without sequence parallelism.

Section 4.1 counts, in bytes, what one transformer layer stores for backward, activations in 16-bit floats and
dropout masks in one byte (s = T sequence length, b = B micro-batch, h = D hidden size, a = H heads):
    attention block   11·s·b·h + 5·a·s²·b   the QKV input 2sbh, Q and K 4sbh, softmax output 2as²b, its dropout
                                            mask as²b and output 2as²b, V 2sbh, the output projection's input
                                            2sbh and its dropout mask sbh
    MLP               19·s·b·h              first linear's input 2sbh, GeLU's input 8sbh, second linear's input
                                            8sbh, dropout mask sbh
    layer norms        4·s·b·h              each norm's input 2sbh
    per layer         s·b·h·(34 + 5·a·s/h)  (equation 1; Table 2, "no parallelism")
Tensor parallelism over t GPUs (section 4.2.1) splits what lies between the column- and row-parallel linears
(24·s·b·h + 5·a·s²·b of it: Q, K, V, the scores and probabilities, their mask, the attention over V, GeLU's input
and the second linear's input) and keeps the rest whole on every GPU (the layer norms' and the first linears'
inputs, the two dropout masks after the sub-layers: 10·s·b·h); sequence parallelism (section 4.2.2) splits that
rest on the sequence too. Table 2, per layer:
    tensor parallel                       s·b·h·(10 + 24/t + 5·a·s/(h·t))   (equation 2)
    tensor + sequence parallel            s·b·h/t·(34 + 5·a·s/h)            (equation 4)
    + selective recomputation             s·b·h·(10 + 24/t), s·b·h·34/t     (the attention core recomputed)
    full recomputation                    2·s·b·h                           (each layer's input)
t = 1 gives the single-GPU rows. The paper's totals multiply by L and leave the embeddings, the final norm, the LM
head and the loss out of Table 2 (section 4.3 calls them small); so does this set: saved_activations_per_layer_bytes
is the paper's per-layer count, saved_activations_bytes L times it.

Setup described: Megatron's GPT layer (LayerNorm, GeLU, biases, dropout on the attention probabilities and after
each sub-layer: our `gpt2` arch with dropout) with 16-bit activations (our pure bf16), on one device or one rank
of FSDP2 (data parallelism shards no activation) with tensor parallelism t >= 1 (our torchtitan plan on the "tp"
dimension, model.tensor_parallel) and, for t > 1, sequence parallelism or not. Recomputation: none with the s²
scores kept (explicit attention); the fused SDPA kernels keep no s² tensor and recompute the attention core inside
their backward, which is what selective recomputation does, so they are graded against its rows (our reading, not
the paper's); full checkpointing. Not our `selective` checkpointing, which is another policy (it keeps the
matmuls' outputs and recomputes everything else, torch's selective activation checkpointing).
"""
from __future__ import annotations

from fractions import Fraction

from model.setup import ANY
from model.spec import StepSpec

NAME = "korthikanti"
DESCRIPTION = ("Korthikanti et al. 2022 (arXiv 2205.05198), Table 2: saved activations per layer sbh(10 + 24/t + "
               "5as/(ht)), sbh/t·(34 + 5as/h) with sequence parallelism, without 5as/h with selective recomputation "
               "or a fused kernel, 2·sbh with full")
# GPT-2's dropout 0.1 (any p > 0 keeps the same masks; without dropout a layer keeps 50·s·b·h fewer bytes at GPT-2
# XL's size, and the set does not describe it)
_GPT_16BIT = {"arch": "gpt2", "dropout": 0.1, "dtype": "bfloat16", "autocast": "none", "micro_batches": 1,
              "shard": ("none", "fsdp2"), "tensor_parallel": ANY, "sequence_parallel": (False, True)}
SETUP = [
    {**_GPT_16BIT, "attention": ("explicit", "sdpa-flash", "sdpa-efficient"), "checkpointing": "none"},
    {**_GPT_16BIT, "attention": ("explicit", "sdpa-math", "sdpa-flash", "sdpa-efficient"), "checkpointing": "full"},
]
SPLIT, WHOLE = 24, 10  # s·b·h bytes per layer that tensor parallelism splits over t, and that it keeps whole
SCORES = 5  # a·s²·b bytes per layer of the attention scores, probabilities and their dropout mask (split over t)
FULL = 2  # Table 2, "full activation recomputation": each layer's 16-bit input


def per_layer_bytes(spec: StepSpec) -> int | float:
    """Bytes one layer keeps for backward on one GPU (Table 2, module docstring): sbh·(10 + 24/t) besides the
    scores, 34·sbh/t with sequence parallelism, 5as²b/t more with the scores kept (explicit attention), 2·sbh with
    full recomputation; an integer where t divides it."""
    config, setup = spec.model, spec.setup
    s, b, h, a = config.context_length, spec.batch_size, config.d_model, config.num_heads
    t = setup.tensor_parallel
    if setup.checkpointing == "full":
        return FULL * s * b * h
    whole = Fraction(WHOLE * s * b * h, t if setup.sequence_parallel else 1)
    total = whole + Fraction(SPLIT * s * b * h, t)
    if setup.attention == "explicit":
        total += Fraction(SCORES * a * s * s * b, t)
    return int(total) if total.denominator == 1 else float(total)


def predict(spec: StepSpec) -> dict:
    """saved activations per layer and L times it; nothing else (the paper sizes activations only)."""
    config = spec.model
    per_layer = per_layer_bytes(spec)
    return {"saved_activations_per_layer_bytes": per_layer, "saved_activations_bytes": config.num_layers * per_layer}
