"""karpathy/nanoGPT's FLOPs estimate, model.py GPT.estimate_mfu and GPT.get_num_params (read at commit 3adf61e1,
the repository's newest; model.py last changed in f08abb45), with transformer_sizing.ipynb (last changed 3341b4ce)
for the numbers it prints.

As written (model.py):
    N = self.get_num_params()                      # non_embedding=True: every parameter less wpe, the position
                                                   # embedding; the token embedding stays, "due to the parameter
                                                   # sharing these params are actually used as weights in the
                                                   # final layer"
    L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd//cfg.n_head, cfg.block_size
    flops_per_token = 6*N + 12*L*H*Q*T             # "see PaLM paper Appendix B"
    flops_per_fwdbwd = flops_per_token * T
    flops_promised = 312e12                        # "A100 GPU bfloat16 peak flops is 312 TFLOPS"
The code gives forward + backward together; the split is PaLM Appendix B's 2N forward / 4N backward, and
transformer_sizing.ipynb's "backward_total = 2 * forward_total # use common estimate of bwd = 2*fwd": a third forward.

Encoded for one step of B sequences of T = context_length tokens (block_size): N = parameter_count(config) less the
learned position embedding T·D; forward (6N + 12LHQT)·B·T / 3, backward twice that. nanoGPT's GPT is our 'gpt2'
block (LayerNorm, GELU, biases, dropout, learned positions, lm_head tied to wte), so 6N counts the LM head once
and the attention matmuls in full, as FlopCounterMode does; only biases and LayerNorm gains (in N, no matmul's)
separate it from our count (+0.085 % on GPT-2 124M).

Printed numbers reproduced (tests/test_published_nanogpt.py): transformer_sizing.ipynb's "palm_flops:
875062886400" for GPT-2 124M without biases (N = 124,337,664 - 786,432), its exact "forward_total 291648307200"
(our FlopCounterMode count) and "fraction of A100 used: 37.14%"; scaling_laws.ipynb's gpt_params = 123.653376 M
(= get_num_params of GPT-2 124M with biases, "number of parameters: 123.65M").
"""
from __future__ import annotations

from analytic.params import parameter_breakdown
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "nanogpt"
DESCRIPTION = ("nanoGPT estimate_mfu: 6N + 12LHQT FLOPs per token (N = get_num_params(): all but the position "
               "embedding, tied head counted once), a third forward")
# What it claims: nanoGPT's own GPT, our 'gpt2' block (its N relies on the tied embedding); the model FLOPs of a
# step without recomputation; any precision and attention kernel.
SETUP = {"arch": "gpt2", "checkpointing": "none"}
FLOPS_PROMISED = 312e12  # A100 bfloat16 peak, estimate_mfu's denominator
BACKWARD_OVER_FORWARD = 2  # "bwd = 2*fwd"


def get_num_params(config: ModelConfig, non_embedding: bool = True) -> int:
    """Every parameter, less the position embedding (wpe) when non_embedding (the default)."""
    parts = parameter_breakdown(config)
    return sum(parts.values()) - (parts["position_embedding"] if non_embedding else 0)


def flops_per_token(n: int, L: int, H: int, Q: int, T: int) -> int:
    """6*N + 12*L*H*Q*T."""
    return 6 * n + 12 * L * H * Q * T


def estimate_mfu(flops_token: float, T: int, fwdbwd_per_iter: int, dt: float) -> float:
    """estimate_mfu's arithmetic: flops_per_token·T per sequence, fwdbwd_per_iter sequences per dt seconds, over
    312e12."""
    return flops_token * T * fwdbwd_per_iter / dt / FLOPS_PROMISED


def predict(spec: StepSpec) -> dict:
    """params = get_num_params(); flops_matmul: flops_per_fwdbwd × B, a third forward and two thirds backward. The
    optimizer plays no part."""
    config, batch_size = spec.model, spec.batch_size
    n = get_num_params(config)
    T = config.context_length
    total = flops_per_token(n, config.num_layers, config.num_heads, config.head_dim, T) * T * batch_size
    forward = total // (1 + BACKWARD_OVER_FORWARD)  # 6N + 12LHQT is a multiple of 3
    return {"params": n, "flops_matmul": {"forward": forward, "backward": total - forward}}
