"""Whether a step's figures fit the 64-bit integers that the exact model, the measurement on meta and the FLOP
counts compute in. No torch.

Every byte and FLOP figure of a step is at most figure_bound(spec), in Python integers:
 1. FLOPs: a matmul costs 2 FLOPs per weight per token in forward and 4 in backward, 6·B·T·P in all, P counting
    every parameter; attention's two matmuls 4·B·T²·D per layer forward, 12 with backward and recomputation;
    elementwise work, the AdamW step and the softmax a few FLOPs per element of each activation (B·T·(D + F) and
    B·H·T² per layer, B·T·V for the loss) and per parameter.
 2. Bytes: parameters, gradients, AdamW's moments and temporaries, a few copies of P at 8 bytes at most; every
    activation saved or transient, a few B·T·(D + F), B·H·T² and B·T·V tensors per layer, at 8 bytes at most.
 3. A rank of N: a gathered parameter keeps N·⌈rows/N⌉·cols elements, at most rows·cols + N·cols, and a block's
    flat buffers as many: N·(D + F + V) per tensor bounds the padding, (L + 2)·8 tensors.
With 64 bounding every "a few" (the step's counts are at most 14 per element: AdamW's FLOPs per parameter),
figure_bound = 64·(B·T·(P + L·(T·(D + H) + D + F) + V) + P + N·(L + 2)·8·(D + F + V)). A step whose bound
exceeds LIMIT is refused before it runs or is predicted: its figures could wrap in int64 and print a wrong number.
"""
from __future__ import annotations

from analytic.params import parameter_count

LIMIT = 2**62  # half of int64's range: a sum of two figures still fits


def figure_bound(spec) -> int:
    """An upper bound of every byte and FLOP figure of the step (module docstring), exact in Python integers."""
    model = spec.model
    B, T, L = int(spec.batch_size), model.context_length, model.num_layers
    D, H, F, V = model.d_model, model.num_heads, model.d_ff, model.vocab_size
    P, N = parameter_count(model), spec.setup.world_size
    return 64 * (B * T * (P + L * (T * (D + H) + D + F) + V) + P + N * (L + 2) * 8 * (D + F + V))


def too_large(spec) -> str | None:
    """Why the step's figures may not fit 64-bit integers (one line), None where they do."""
    bound = figure_bound(spec)
    if bound <= LIMIT:
        return None
    return (f"this step's figures may reach {float(bound):.2e}, past the 2^62 that 64-bit counts hold; "
            f"give a smaller batch or model")
