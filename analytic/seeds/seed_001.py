"""Seed 001: fp32, N = 2vh + 16lh² (FFN counted as 12h², no norms, no position embedding), 16bsh + 2bns² per
layer plus two bsv terms, Kaplan 2PBS / 4PBS, 16 FLOPs per parameter with no derivation, GiB labelled GB."""
from __future__ import annotations

from analytic.seeds.common import GB, SeedFormulas, counted_params, params_flops

NAME = "seed_001"
# the problem's step in its answer's accounting: fp32, every B·H·T² score kept, no recomputation, one batch
SETUP = {"arch": "reference", "dtype": "float32", "autocast": "none", "attention": ("explicit", "sdpa-math"),
         "checkpointing": "none", "micro_batches": 1}
SEED_FILE = "001_3984cd0f5759ce24"
DESCRIPTION = "fp32; N = 2vh + 16lh² (FFN 12h²); 16bsh + 2bns²/layer + bsh + 2bsv; 2PBS/4PBS FLOPs; 16P AdamW"


# N = 2vh + l·(4h² + 12h²): "Attn: 4h^2, FFN: 12h^2" (three h x 4h matrices), no norms, no positions
params = counted_params(position=False, norms=False, ffn_matrices=3, ffn_width="4D", final_norm=False)


FORMULAS = SeedFormulas(
    params=params,
    # "Norm1: bsh; qkv proj: 3bsh; qk multiply: bns^2; softmax: bns^2; weighted sum: bsh; output projection: bsh;
    #  Norm2: bsh; w1: 4bsh; silu: 4bsh; w2: bsh" = 16bsh + 2bns^2
    layer_terms="norm1=BTD q_proj=BTD k_proj=BTD v_proj=BTD scores=BHTT softmax=BHTT weighted_sum=BTD "
                "out_proj=BTD norm2=BTD w1=4BTD silu=4BTD w2=BTD",
    # "Final Norm: bsh; Output Embedding: bsv; Cross Entropy: bsv"
    outside_terms="final_norm=BTD lm_head=BTV cross_entropy=BTV",
    bytes_per_element=4,
    forward_flops=params_flops(2, params),  # "flops_foward = 2 * P * B * S"
    adamw_flops_per_param=16,  # "flops_op = 16 * P"
    adamw_itemised=None,
)
predict, recompute = FORMULAS.predict, FORMULAS.recompute

STATED = {
    "params": 2.13e9,                     # "GPT2-XL has 2.13B parameters (our version)"
    "fixed_memory_bytes": 31.7 * GB,      # "constant memory: 4 * 4 * (2vh + 16lh^2) = 31.7GB"
    "per_batch_memory_bytes": 14.4 * GB,  # "floating memory: b * 4 * ((16sh+2ns^2)l + sh + 2sv) = 14.4G * b"
    "max_batch_80GB": 3,                  # "if you have 80G, then the max batch size you can have is 3"
    "adamw_flops_per_param": 16,          # "flops_op = 16 * P"
    "training_days": 6380,                # "number of days: 6380 days"
}

REASONS = {
    "adamw_flops_per_param": "16 FLOPs per parameter is stated with no itemisation ('Optimizer calculation is "
                             "actually negligible')",
}

NOTES = [
    "FFN parameters 12h² (three h x 4h matrices) while its activations and FLOPs have two FFN matmuls; "
    "our model has 8h²",
    "no RMSNorm gains and no position embedding in N",
    "(a)'s total adds 4·params elements to activation elements with no bytes factor; the GPT-2 XL line multiplies "
    "by 4 bytes",
    "training FLOPs 6·P·tokens leave out attention T² FLOPs and the AdamW step; days use 8.4e5 T per day "
    "(rounded from 842,400)",
]
