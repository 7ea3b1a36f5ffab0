"""Seed 004 (a notebook): bf16 (dtype_size=2) memory, N with position embedding but no norm gains, activations
5TD + HT² + 2T·d_ff per layer, forward FLOPs = matmuls + RMSNorm, softmax and GELU elementwise counts, AdamW
16 FLOPs per parameter (itemised 14), and the FLOP table of its training estimate built for batch 1."""
from __future__ import annotations

from analytic.seeds.common import GiB, SeedFormulas, counted_params, matmul_flops_without

NAME = "seed_004"
# the problem's step in its answer's accounting: pure bf16 (2 bytes for everything), B·H·T² scores kept, no
# recomputation, one batch
SETUP = {"arch": "reference", "dtype": "bfloat16", "autocast": "none", "attention": ("explicit", "sdpa-math"),
         "checkpointing": "none", "micro_batches": 1}
SEED_FILE = "004_fbc8fa0ee5f365f1"
DESCRIPTION = "bf16; N = 2VD + TD + L(4D² + 2D·d_ff); L(5BTD + BHT² + 2BT·d_ff) + BTD + BTV; matmul + elementwise; 16N"


# total_params = 2VD + TD + L·(4D² + 2·D·d_ff): embeddings, QKVO, FFN, LM head; no RMSNorm gains
params = counted_params(position=True, norms=False, ffn_matrices=2, ffn_width="F", final_norm=False)


def forward_flops(config, batch_size):
    """get_forward_flops_TransformerLM: the textbook matmul terms plus its elementwise counts.

    1. matmuls: QKV 6BTD², QKᵀ and weighted sum 2BT²D each, O 2BTD², W1 and W2 2BTD·d_ff each, LM head 2BTDV
    2. RMSNorm (3D + 2)·B·T, twice per layer and once at the end: (2L + 1)·(3D + 2)·B·T
    3. softmax 5·B·T²·H per layer
    4. GELU 5·B·T·d_ff per layer
    """
    B, T, L, D, H, F = (batch_size, config.context_length, config.num_layers, config.d_model, config.num_heads,
                        config.d_ff)
    elementwise = (2 * L + 1) * (3 * D + 2) * B * T + L * (5 * B * T * T * H + 5 * B * T * F)
    return matmul_flops_without()(config, batch_size) + elementwise


FORMULAS = SeedFormulas(
    params=params,
    # "rmsnorma_act = T·D; qkv_act = 3·T·D; pre_softmax_act = H·T²; attn_weight_act = T·D; h1_act = T·d_ff;
    #  h2_act = T·d_ff" (h2 = GELU output, filed under silu)
    layer_terms="norm1=BTD q_proj=BTD k_proj=BTD v_proj=BTD scores=BHTT weighted_sum=BTD w1=BTF silu=BTF",
    outside_terms="final_norm=BTD lm_head=BTV",  # "final_rmsnorm = T·D; logits = T·V"
    bytes_per_element=2,  # calc_mem(..., dtype_size=2): bf16
    forward_flops=forward_flops,
    adamw_flops_per_param=16,
    adamw_itemised=(2, 3, 1, 1, 2, 1, 4),  # its seven commented lines; "TOTAL CONSTANT FLOPs = 16"
    training_counts_optimizer=True,  # get_overall_flops adds F_adamw
)
predict, recompute = FORMULAS.predict, FORMULAS.recompute

STATED = {
    "params": 1.64e9,                       # "Total trainable params 1.64B"
    "fixed_memory_bytes": 12.20 * GiB,      # "Total Constant Memory: 12.20 GiB (bf16)"
    "per_batch_memory_bytes": 4.35 * GiB,   # "Total Activation Memory: 4.35 GiB (bf16)"
    "max_batch_80GB": 15,                   # calc_mem(batch_size=15) -> "Total Memory ...: 77.40 GiB (bf16)"
    "adamw_flops_per_param": 16,            # "# TOTAL CONSTANT FLOPs = 16"
    "adamw_flops": 0.0262e12,               # "'0.0262 TeraFLOPs'"
    "flops_per_step": 1.0571e12,            # "Total transformer flops per step: 1.0571 TeraFLOPs"
    "training_days": 5.02,                  # "Total training time with NVIDIA A100 GPU: 5.02 days"
}

REASONS = {
    "adamw_flops_per_param": "its comments itemise 2 + 3 + 1 + 1 + 2 + 1 + 4 = 14 FLOPs, then state "
                             "'TOTAL CONSTANT FLOPs = 16'",
    "flops_per_step": "printed as total / 10e12 (= 10^13) under the label TeraFLOPs, for one sequence "
                      "(flops_table_multiindex defaults b=1): the code's value is 1.0571e13 FLOPs for batch 1",
    "training_days": "the FLOP table is built with the default b=1, so each of the 400K steps is one sequence, "
                     "not 1024",
}

NOTES = [
    "memory in bf16 (dtype_size=2) though the problem states float32: with 4 bytes, a = 8.69 GiB, b = 24.39 GiB",
    "GELU (5 FLOPs per element) instead of SiLU, and the problem's text edited to say GELU",
    "no RMSNorm gains in N; the learned position embedding T·D is counted",
    "activations: one RMSNorm per layer, only one of scores/softmax, no out_proj, norm2 or cross-entropy terms",
    "batch 15 is only shown to fit in 77.40 GiB; 80 GB is 74.51 GiB",
]
