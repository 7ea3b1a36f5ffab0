"""Why the textbook and the measurement differ, component by component and term by term (`explain`)."""
from __future__ import annotations

WHY_COMPONENT = {
    "checkpoint": "no textbook term: a checkpointed block keeps its input (B·T·D) and recomputes the rest in "
                  "backward (selective checkpointing also keeps the linear layers' outputs); nothing without "
                  "checkpointing",
    "embedding": "keeps only the token ids (inputs) and position indices (a buffer): no activation bytes",
    "norm1": "textbook: its output; autograd keeps its input x, x·rsqrt (B·T·D each) and rsqrt (B·T) "
             "(gpt2's LayerNorm: x and an fp32 mean and rstd, B·T each); the output is kept by q_proj",
    "q_proj": "a linear layer keeps its input, not its output: the normalised x (B·T·D), shared with k_proj "
              "and v_proj and counted once, here",
    "k_proj": "shares q_proj's saved input; its output is kept by scores (as a contiguous copy)",
    "v_proj": "shares q_proj's saved input; its output is kept by weighted_sum (as a contiguous copy)",
    "rope": "keeps only its cos/sin tables (buffers); its outputs are kept by scores",
    "sdpa": "F.scaled_dot_product_attention: flash and memory-efficient kernels keep q, k, v, their output and "
            "an fp32 logsumexp per row (B·H·T; padded to a multiple of 32 rows by the efficient kernel), never "
            "the B·H·T² probabilities; the math backend keeps them, as explicit attention does",
    "scores": "textbook: the B·H·T² scores; the QKᵀ matmul keeps its inputs, contiguous q and k "
              "(2·B·T·D); scaling and masking keep nothing",
    "softmax": "one B·H·T² output, shared with the P·V matmul; the pre-softmax scores are a temporary",
    "weighted_sum": "textbook: its output; the P·V matmul keeps its inputs: the probabilities (softmax's) and "
                    "a contiguous copy of v (B·T·D)",
    "out_proj": "its input, the merged heads (a .contiguous() copy, B·T·D)",
    "norm2": "as norm1: input, x·rsqrt and rsqrt (2·B·T·D + B·T)",
    "w1": "its input, norm2's output (B·T·D), not its B·T·d_ff output (kept by silu)",
    "silu": "its input, w1's output (B·T·d_ff)",
    "w2": "its input, silu's output (B·T·d_ff), not its B·T·D output",
    "final_norm": "input, x·rsqrt and rsqrt (2·B·T·D + B·T)",
    "lm_head": "its input (B·T·D); the B·T·V logits die inside forward once log-softmax has run",
    "cross_entropy": "the B·T·V log-probabilities and a 0-dim total weight",
    "repeat_kv": "keeps nothing: grouped-query attention's k and v (B·T·G·Dh) are repeated for their query "
                 "heads into B·T·D copies, kept by scores and weighted_sum",
    "probs_dropout": "gpt2: a bool mask of the probabilities (B·H·T² bytes); its output, the dropped "
                     "probabilities (B·H·T²), is kept by the P·V matmul",
    "out_dropout": "gpt2: a bool mask (B·T·D bytes)",
    "ffn_dropout": "gpt2: a bool mask (B·T·D bytes)",
    "embedding_dropout": "gpt2: a bool mask (B·T·D bytes)",
    "gelu": "gpt2: its input, w1's output (B·T·d_ff)",
    "w3": "llama: shares w1's saved input; its B·T·d_ff output is kept by gating",
    "gating": "llama's SwiGLU product silu(w1 x) · w3 x keeps both factors (2·B·T·d_ff)",
}

WHY_TERM = {
    "parameters": "equal: every parameter, once",
    "gradients": "the textbook adds all gradients to all activations; in the real step they never coexist: "
                 "gradients appear as activations are freed in backward, and are gone (set_to_none) by the "
                 "next forward",
    "optimizer_state": "equal in the steady state (2 per parameter); the first step creates it inside step()",
    "saved_activations": "what autograd keeps (see the components) rather than every op's output",
    "optimizer_temporaries": "no textbook term: foreach AdamW allocates sqrt(v) for every parameter at once "
                             "(1× parameters), for-loop AdamW a few parameter-sized buffers",
    "peak": "the textbook sums every category; the real peak is the highest moment of one phase",
}
GRADIENTS_KEPT = ("the textbook adds all gradients to all activations; here they coexist: {when}, .grad exists "
                  "through forward and backward, and each weight gradient backward computes is a temporary added "
                  "into it")


def why_term(name: str, setup) -> str:
    """WHY_TERM[name], for the setup (a model.setup.Setup): gradients outlive a step with zero_grad 'zeros' and a
    micro-batch with gradient accumulation."""
    if name == "gradients" and (setup.zero_grad == "zeros" or setup.micro_batches > 1):
        when = "with zero_grad 'zeros'" if setup.zero_grad == "zeros" else "from micro-batch 2 on"
        return GRADIENTS_KEPT.format(when=when)
    return WHY_TERM[name]
