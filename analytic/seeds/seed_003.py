"""Seed 003: fp32, SwiGLU parameters (three D x d_ff matrices, no position embedding), activations as
instantiated in (b) (8TD + T·d_ff + 2HT² per layer, embedding output and logits outside), forward matmul FLOPs
without the LM head, 15 FLOPs per AdamW parameter, GiB labelled GB, a 1000x slip in training FLOPs."""
from __future__ import annotations

from analytic.seeds.common import GB, SeedFormulas, counted_params, matmul_flops_without

NAME = "seed_003"
# the problem's step in its answer's accounting: fp32, every B·H·T² score kept, no recomputation, one batch
SETUP = {"arch": ("reference", "llama"), "dtype": "float32", "autocast": "none",
         "attention": ("explicit", "sdpa-math"), "checkpointing": "none", "micro_batches": 1}
SEED_FILE = "003_1da3290532807f31"
DESCRIPTION = ("fp32; N = 2VD + L(4D² + 3D·d_ff + 2D) + D; L(8BTD + BT·d_ff + 2BHT²) + BTD + BTV; "
               "matmuls w/o LM head; 15N")


# P = 2·V·D + L·(2D + 4D² + 3·D·d_ff) + D: "W1, W3, W2" each D x d_ff with d_ff = 6,400 in (b)
params = counted_params(position=False, norms=True, ffn_matrices=3, ffn_width="F", final_norm=True)


FORMULAS = SeedFormulas(
    params=params,
    # (b) "Q,K,V: 3TD; Scores/Probs: 2HT²; Others: ~3TD" and "Hidden: T·d_ff; Others: ~2TD".
    # Which components the "Others" are is our attribution (norm1, weighted_sum, out_proj; norm2, w2).
    layer_terms="q_proj=BTD k_proj=BTD v_proj=BTD scores=BHTT softmax=BHTT norm1=BTD weighted_sum=BTD "
                "out_proj=BTD w1=BTF norm2=BTD w2=BTD",
    outside_terms="embedding=BTD lm_head=BTV",  # "Input: 1,024 x 1,600", "Output: 1,024 x 50,257"
    bytes_per_element=4,
    # "Per token per layer: 24d_model² + 4 × context_length × d_model"; "Output: 2 × d_model × vocab_size" is
    # listed but not added
    forward_flops=matmul_flops_without("lm_head"),
    adamw_flops_per_param=15,
    adamw_itemised=(3, 4, 5, 3),  # "Total per parameter: 3 + 4 + 5 + 3 = 15 FLOPs"
)
predict, recompute = FORMULAS.predict, FORMULAS.recompute

STATED = {
    "params": 2_127_057_600,             # "Total P = ... = 2,127,057,600 parameters"
    "fixed_memory_bytes": 31.70 * GB,    # "= 34,032,921,600 bytes = 31.70 GB"
    "per_batch_memory_bytes": 2.265 * GB,  # "Approximately: 2.265 GB per batch element"
    "max_batch_80GB": 21,                # "Maximum batch_size = 21 (rounding down)"
    "adamw_flops_per_param": 15,         # "Total per parameter: 3 + 4 + 5 + 3 = 15 FLOPs"
    "adamw_flops": 31_905_864_000,       # "Total_FLOPs = 15 × 2,127,057,600 = 31,905,864,000 FLOPs"
    "flops_per_step": 10.26e15,          # "Total_per_step = 3 × Forward_FLOPs = 3 × 3.42 PFLOPs = 10.26 PFLOPs"
    "training_days": 4.87,               # "= 421,026 seconds = 117 hours = 4.87 days"
}

REASONS = {
    "per_batch_memory_bytes": "unexplained constant: 'But with more careful accounting of what needs to be kept: "
                              "Approximately: 2.265 GB per batch element', after its own instantiation gave "
                              "3,513,402,368 values = 14,053,609,472 bytes (printed '13.09 GB', which is GiB)",
    "max_batch_80GB": "follows only from the unexplained 2.265 GB: (80 - 31.70) / 2.265 = 21.3",
    "training_days": "400,000 steps x 10.26 PFLOPs = 4.104 x 10^21, written 4.104 x 10^18",
}

NOTES = [
    "counts a SwiGLU W3 (3·D·d_ff parameters with d_ff = 6,400, not 8/3·D) but no W3 in activations or FLOPs",
    "(a)'s activation algebra (13·D + 2·H·T per token and layer, plus final norm) differs from (b)'s "
    "instantiation (8·D + d_ff + 2·H·T, no final norm); (a)'s A already carries x4 bytes and the total x4 again",
    "LM head FLOPs (2·D·V per token) and softmax FLOPs listed but not added to the forward total",
    "the summary says the optimizer step is '~25 GFLOPs' after computing 31.9 GFLOPs",
    "no position embedding in N; mentions RoPE FLOPs",
]
