"""Seed 002 (a notebook): its (b) code is encoded: N = 2Vd + L(12d² + 2d) + d, activations
L·(19BTd + 2BHT²) + BTd + BTV (the 19 is not itemised; (a) says 14), fp32, "6N FLOPs per token" for the forward
pass with backward 2x on top, 8 FLOPs per parameter for AdamW."""
from __future__ import annotations

from analytic.seeds.common import SeedFormulas, counted_params, params_flops

NAME = "seed_002"
# the problem's step in its answer's accounting: fp32, every B·H·T² score kept, no recomputation, one batch
SETUP = {"arch": "reference", "dtype": "float32", "autocast": "none", "attention": ("explicit", "sdpa-math"),
         "checkpointing": "none", "micro_batches": 1}
SEED_FILE = "002_58b06113104545d7"
DESCRIPTION = "fp32; N = 2Vd + L(12d² + 2d) + d; L(19BTd + 2BHT²) + BTd + BTV; forward 6N/token, backward 2x; 8N AdamW"


# N = 2 * V * d + L * (12 * d**2 + 2 * d) + d (its (b) code; d_ff = 4d written in)
params = counted_params(position=False, norms=True, ffn_matrices=2, ffn_width="4D", final_norm=True)


FORMULAS = SeedFormulas(
    params=params,
    # "M_peak = 16*N + 4*[L*(19*B*T*d + 2*B*H*T^2) + B*T*d + B*T*V]": the 19 BTd are not tied to components
    layer_terms="*=19BTD *=2BHTT",
    outside_terms="final_norm=BTD lm_head=BTV",
    bytes_per_element=4,
    forward_flops=params_flops(6, params),  # "FLOPs per token 6N ... Forward Pass = 6 * 1.5B"
    adamw_flops_per_param=8,
    adamw_itemised=(2, 6),  # "flops_per_param_adamw = 8 # 2 for gradient computation, 6 for AdamW update"
)
predict, recompute = FORMULAS.predict, FORMULAS.recompute

STATED = {
    "params": 1.56e9,                          # "total_params = 1.56e9 # 1.56 Billion"
    "max_batch_80GB": 12284768211.92053,       # "Max Batch Size: 12284768211.92053"
    "adamw_flops_per_param": 8,                # "flops_per_param_adamw = 8"
    "adamw_flops": 8 * 1.56e9,                 # "total_flops_adamw = flops_per_param_adamw * total_params"
    "training_days": 12.83,                    # "= 12.83 days"
}

REASONS = {
    "params": "hard-coded 'total_params = 1.56e9' in (c) ('1.5B' in (d)) while its own (b) code computes "
              "N = 2*V*d + L*(12*d**2 + 2*d) + d",
    "max_batch_80GB": "a printed number the code cannot produce: the cell prints "
                      "f'Max batch size for 80 GB: B = {max_B}' with max_B = int(...), an integer",
    "adamw_flops": "8 x the hard-coded 1.56e9 instead of its own N",
    "training_days": "compensating slips: '6N FLOPs per token' taken as the forward pass alone, then x3 for "
                     "backward; 6 x 1.5B = 9e9 written 9 x 10^12 (1000x); FLOPs per token multiplied by the 400K "
                     "steps, not by the 1024 x 1024 tokens of each step; 1.5B hard-coded. "
                     "400,000 x 27e12 / 9.75e12 / 86,400 = 12.82",
}

NOTES = [
    "(a) and (b) disagree: (a) N = 12LD² + VD (one embedding, no norms) and 14·BTD per layer with no final norm; "
    "(b) N = 2Vd + L(12d² + 2d) + d and 19·BTd per layer + BTd",
    "its (b) code divides bytes by 1024**3 and prints 'GB' (no printed output shown)",
    "'2 for gradient computation' is not optimizer work",
    "no position embedding in N",
]
