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
# A rank of a sharded step (FSDP2, DDP) holds these too: the gathered parameters of a block, the flat buffer one
# all-gather fills, the full gradients autograd computes for gathered parameters, the reduce-scatter (or
# all-reduce) buffers (profiler.measuring.sharded).
SHARDED_CATEGORIES = CATEGORIES + ("unsharded_parameters", "all_gather_buffers", "unsharded_gradients",
                                   "reduce_scatter_buffers")

# Per-layer components, in forward order, then the components outside the blocks. Each is a named module of
# model.transformer, so saved tensors and FLOPs are attributed by module path ("rope" exists only with RoPE;
# "embedding" covers the token and the learned position embedding; "checkpoint" holds what a checkpointed block
# keeps, its input, and nothing without checkpointing; "sdpa" is F.scaled_dot_product_attention, which replaces
# scores, softmax and weighted_sum when attention is not explicit; the arch's own: repeat_kv with grouped-query
# attention, gelu (gpt2, in place of silu), w3 and gating (llama's SwiGLU: silu(w1 x) · w3 x), the dropouts
# (gpt2): on the attention probabilities, after out_proj, after w2, after the embeddings).
LAYER_COMPONENTS = (
    "checkpoint", "norm1", "q_proj", "k_proj", "v_proj", "rope", "repeat_kv", "sdpa", "scores", "softmax",
    "probs_dropout", "weighted_sum", "out_proj", "out_dropout", "norm2", "w1", "silu", "gelu", "w3", "gating",
    "w2", "ffn_dropout",
)
MODEL_COMPONENTS = ("embedding", "embedding_dropout", "final_norm", "lm_head", "cross_entropy")
COMPONENTS = ("embedding", "embedding_dropout") + LAYER_COMPONENTS + ("final_norm", "lm_head", "cross_entropy")


def components_of(spec) -> tuple[str, ...]:
    """The components worth a row for a step spec (model.spec.StepSpec; COMPONENTS order): those its model has,
    and those the textbook has a term for (scores, softmax, weighted_sum, silu) even where the model runs them
    otherwise."""
    config, absent = spec.model, set()
    if config.positional != "rope":
        absent.add("rope")
    if spec.setup.attention == "explicit":
        absent.add("sdpa")
    else:
        absent.add("probs_dropout")  # the fused kernels drop inside: no mask
    if config.kv_heads == config.num_heads:
        absent.add("repeat_kv")
    if config.arch != "gpt2":
        absent.add("gelu")
    if config.arch != "llama":
        absent |= {"w3", "gating"}
    if not config.dropout:
        absent |= {"probs_dropout", "out_dropout", "ffn_dropout", "embedding_dropout"}
    return tuple(name for name in COMPONENTS if name not in absent)


# The AdamW implementation measured and predicted ("optimizer" everywhere: CLI option, JSON field, argument).
OPTIMIZERS = ("forloop", "foreach", "fused")

# Where a step is measured: meta tensors (simulated), real CPU tensors, or a CUDA GPU.
DEVICES = ("meta", "cpu", "cuda")
