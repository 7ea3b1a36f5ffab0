"""The shared vocabulary of predictions and measurements: phases, memory categories, components.

Defined once here (no torch import) and imported everywhere else.
"""
PHASES = ("forward", "backward", "optimizer")
# train_step's `mark` names each phase as it begins, then "end": a phase runs from its mark to the next one.
MARKS = PHASES + ("end",)

# Memory categories. Every live byte at any moment of a step belongs to exactly one of them. "buffers" holds the
# model's non-trainable state (the causal mask, position indices, RoPE tables): allocated, but no textbook term.
# "inputs" holds the batch (token ids and targets), which the caller owns for the whole step.
CATEGORIES = (
    "parameters",
    "buffers",
    "inputs",
    "gradients",
    "optimizer_state",
    "optimizer_temporaries",
    "saved_activations",
    "temporaries",
)

# Per-layer components, in forward order, then the components outside the blocks. Each is a named module of
# model.transformer, so saved tensors and FLOPs are attributed by module path ("rope" exists only with RoPE;
# "embedding" covers the token and the learned position embedding; "checkpoint" holds what a checkpointed block
# keeps, its input, and nothing without checkpointing; "sdpa" is F.scaled_dot_product_attention, which replaces
# scores, softmax and weighted_sum when attention is not explicit).
LAYER_COMPONENTS = (
    "checkpoint", "norm1", "q_proj", "k_proj", "v_proj", "rope", "sdpa", "scores", "softmax", "weighted_sum",
    "out_proj", "norm2", "w1", "silu", "w2",
)
MODEL_COMPONENTS = ("embedding", "final_norm", "lm_head", "cross_entropy")
COMPONENTS = ("embedding",) + LAYER_COMPONENTS + ("final_norm", "lm_head", "cross_entropy")

# The AdamW implementation measured and predicted ("optimizer" everywhere: CLI option, JSON field, argument).
OPTIMIZERS = ("forloop", "foreach", "fused")

# Where a step is measured: meta tensors (simulated), real CPU tensors, or a CUDA GPU.
DEVICES = ("meta", "cpu", "cuda")
