"""Model states of one rank under FSDP2 (fully_shard), and under DDP as FSDP2's engine runs it (replicate), in
closed form.

FSDP2 shards every parameter on its first dimension with torch.chunk over the N ranks: chunks of c = ⌈rows/N⌉
rows, rank r holding rows_r = min(c, max(0, rows − r·c)) of them (the last ranks fewer, or none), stored padded to c
rows so that every rank's all-gather input has one size. For parameter tensors of (rows_i, cols_i)
(analytic.params.parameter_tensor_shapes), with b the bytes of the parameters' dtype:

    parameters      = b · Σ_i ⌈rows_i/N⌉ · cols_i      the padded shards: the same on every rank
    gradients       = b · Σ_i ⌈rows_i/N⌉ · cols_i      the reduce-scatter output, padded, cast to the parameters'
                                                       dtype; the sharded .grad are views into it
    optimizer_state = 2b · Σ_i rows_i,r · cols_i       AdamW's exp_avg and exp_avg_sq, zeros_like the unpadded
                                                       local shard (its step counters live on the host)

Under amp-bf16 FSDP2 keeps float32 shards (its MixedPrecisionPolicy casts a copy to bf16 for compute and reduces
gradients in float32), so b = 4 there as in fp32. Rank 0 holds the most: no shard of it is shorter than another
rank's, and everything else a rank holds is alike (the same batch size, padded buffers). With every rows_i
divisible by N, the three are 1/N of one device's: b·Ψ/N + b·Ψ/N + 2b·Ψ/N, that is 16Ψ/N bytes in fp32, the
figure of ZeRO stage 3 (analytic.published.zero) with its 16-bit weights and gradients counted at 4 bytes and its
K = 12 at 8 (FSDP2 keeps no separate fp32 master copy: the shards are the master weights).

With tensor parallelism t (model.tensor_parallel) rank r = i·t + j first holds its "tp" part j of each tensor
(analytic.params.parameter_tensor_shapes: torch.chunk's rows of the column-wise layers, the embeddings and the LM
head, columns of the row-wise layers, the norms whole), then FSDP2 shards that part over the N = world_size / t
ranks of "dp" as above, rank r being the i-th: the same sums over the parts' (rows, cols).

Shard 'ddp' (torch's replicate on FSDP2's engine) shards over a group of one: every rank holds one device's model
states, b·Ψ + b·Ψ + 2b·Ψ (N = 1 above, whatever the world size), ZeRO's baseline data parallelism.
"""
from __future__ import annotations

from analytic.params import parameter_tensor_shapes, shard_rows
from model.setup import ANY, Setup
from model.spec import StepSpec

NAME = "fsdp2"
DESCRIPTION = ("FSDP2's model states per rank in closed form: padded parameter and gradient shards "
               "b·Σ⌈rows/N⌉·cols each, AdamW state 2b·Σ rows_r·cols (rank 0, the rank that holds the most); "
               "under DDP (replicate) one device's; with tensor parallelism t, of a rank's part of each tensor")
SETUP = {"shard": ("fsdp2", "ddp"), "tensor_parallel": ANY, "sequence_parallel": (False, True)}


def padded_rows(rows: int, world_size: int) -> int:
    """⌈rows / N⌉: the rows of every rank's padded shard."""
    return -(-rows // world_size)


def shard_group(setup: Setup) -> int:
    """N, the ranks each parameter is sharded over: world_size under FSDP2 (world_size / t, the "dp" dimension,
    with tensor parallelism), 1 under DDP and on one device."""
    return setup.world_size // setup.tensor_parallel if setup.shard == "fsdp2" else 1


def padded_elements(shapes: list[tuple[int, int]], world_size: int) -> int:
    """Σ⌈rows/N⌉·cols: the elements of every rank's padded shards of tensors of these (rows, cols)."""
    return sum(padded_rows(rows, world_size) * columns for rows, columns in shapes)


def fsdp2_model_states(spec: StepSpec, rank: int = 0) -> dict[str, int]:
    """Bytes of one rank's parameter shards, gradient shards and AdamW state (see the module docstring) over
    the setup's world_size ranks (one device's, unpadded, without sharding and under DDP). With tensor parallelism
    t, rank r = i·t + j holds the shards of its "tp" part j (analytic.params.parameter_tensor_shapes) over the
    N = world_size / t ranks of "dp", as the i-th of them (the same sums over those shapes)."""
    setup = spec.setup
    if not 0 <= rank < setup.world_size:
        raise ValueError(f"rank must be in 0..{setup.world_size - 1}, got {rank}")
    N, b, t = shard_group(setup), setup.bytes_per_element, setup.tensor_parallel
    dp_rank, tp_rank = divmod(rank, t) if N > 1 or t > 1 else (0, 0)
    shapes = parameter_tensor_shapes(spec.model, t, tp_rank)
    padded = padded_elements(shapes, N)
    local = sum(shard_rows(rows, N, dp_rank) * columns for rows, columns in shapes)
    return {"parameters": b * padded, "gradients": b * padded, "optimizer_state": 2 * b * local}


def predict(spec: StepSpec) -> dict:
    """Rank 0's model states (the optimizer step holds all three); nothing else is in closed form yet."""
    states = fsdp2_model_states(spec)
    return {"model_states": states, "model_states_bytes": sum(states.values())}
