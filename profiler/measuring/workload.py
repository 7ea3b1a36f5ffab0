"""How long a measurement will run, estimated before it runs from what the step spec says (no torch, nothing run).

On meta (and for the tracker's share on cpu) the cost is Python's: every aten op goes through the storage tracker's
dispatch (profiler.measuring.tracker), which logs it and its allocations, so time and memory grow with the number
of ops traced, not with the tensors' sizes. A measurement traces two steps (the warm-up and the measured one):

    ops = 2 · (L · (k · OPS_PER_LAYER · r + OPTIMIZER_OPS_PER_LAYER) + OPS_PER_STEP + OPS_PER_MICRO_BATCH · k)

L layers, k micro-batches, r = RECOMPUTE with activation checkpointing (full or selective: a block's forward runs
again in backward), else 1; a sharded rank (fsdp2, ddp) traces SHARDED times as many (DTensor dispatch, the
all-gathers' and reduce-scatters' copies). Calibration, counted with the tracker on tiny at L = 1 and 33 (torch
2.13, batch 4), ops per layer and step: reference 214·k + 42 (k = 1 and 4), gpt2 273, llama with RoPE 325, bf16
autocast 282, full checkpointing 351 and selective 352 (309 per micro-batch: 1.45×), forloop AdamW 320 (106 for
the optimizer), FSDP2 at 8 ranks 884, DDP 850 (3.3×), FSDP2 with tensor parallelism t = 2 over them 874 and 906
with sequence parallelism (the same SHARDED); outside the blocks 37 + 66·k per step. OPS_PER_LAYER = 250 stands for
every block (214 to 283 per micro-batch): the estimate is within about 20 % of the count
(tests/test_workload.py: gpt2-xl 28,540 for 24,782 counted, llama2-7b 19,100 for 21,030).

FSDP2 also cuts every parameter tensor into world_size chunks (torch's _chunk_with_empty, twice per tensor: linear
in the world size, torch's own loop, not the tracker's), SHARD_SECONDS each: tiny (20 tensors) at 65,536 ranks
spends about 20 of its 24 s there; at 1,000,000 ranks (40 million chunks) it ran 432 s here, sharing the cores.

On cpu the step's arithmetic is real: 2 steps of B·T·(6·P + 12·L·T·D) FLOPs (a matmul's 2 FLOPs per weight per
token forward and 4 backward, attention's QKᵀ and PV 12·L·T·D per token with backward: the PaLM / nanoGPT count)
at CPU_FLOPS; a sharded step on cpu runs world_size processes (a gloo group), each starting at PROCESS_SECONDS.

Rates measured on the 2 shared cores this was written on (torch 2.13 CPU build): 60 to 130 µs per traced op
(OP_SECONDS = 100 µs; measure --preset tiny --num-layers 200 ran 9.8 s, the tracker's log about 650 bytes per
op), 5 to 7 µs per FSDP2 chunk, gpt2-small on cpu 77 s at batch 1 and 163 s at batch 4 (about 3·10¹⁰ FLOP/s).
GPT-2 XL on meta: about 28,000 ops, 3 s; `measure --preset tiny --num-layers 100000`: 59 million ops, about 1.6
hours and 38 GB of log. On cuda the step runs on the GPU and is not estimated.
"""
from __future__ import annotations

from dataclasses import dataclass

from analytic.params import parameter_count, parameter_tensor_count

STEPS = 2  # the warm-up step and the measured one
OPS_PER_LAYER = 250  # one block's forward and backward, per micro-batch
RECOMPUTE = 1.45  # activation checkpointing: the block's forward again in backward
OPTIMIZER_OPS_PER_LAYER = {"foreach": 45, "forloop": 110, "fused": 45}  # fused: as foreach (not on meta)
OPS_PER_STEP = 40  # embeddings, final norm, loss, zero_grad, outside the blocks
OPS_PER_MICRO_BATCH = 70
SHARDED = 3.3
CHUNKS_PER_TENSOR = 2  # FSDP2 splits each parameter tensor into world_size chunks twice
OP_SECONDS = 100e-6
SHARD_SECONDS = 7e-6
CPU_FLOPS = 3e10
PROCESS_SECONDS = 3.0  # a gloo rank's start: a Python process importing torch

LIMIT_SECONDS = 600  # a step estimated longer is refused unless asked for (profiler.commands.options)
PROGRESS_SECONDS = 30  # a step estimated longer says so on stderr before it runs


@dataclass(frozen=True)
class Work:
    """What a measurement of a step will do: ops traced (per process), FSDP2's chunks, real FLOPs (cpu), processes,
    and the seconds they add up to (module docstring)."""

    ops: int
    chunks: int
    flops: int
    processes: int
    seconds: float

    def parts(self) -> str:
        """What most of the seconds go to, in words: the ops traced, FSDP2's chunks, the FLOPs or the processes'
        starts, whichever costs most."""
        n = self.processes
        each = f" in each of {n:,} processes" if n > 1 else ""
        costs = [(n * self.ops * OP_SECONDS, f"{self.ops:,} traced ops{each}"),
                 (n * self.chunks * SHARD_SECONDS, f"{self.chunks:,} FSDP2 chunks{each}"),
                 (n * self.flops / CPU_FLOPS, f"{self.flops:.1e} FLOPs{each}"),
                 ((n > 1) * n * PROCESS_SECONDS, f"{n:,} processes to start")]
        return max(costs)[1]


def traced_ops(spec) -> int:
    """The aten ops the tracker sees over the warm-up and the measured step of `spec` (module docstring)."""
    setup, L, k = spec.setup, spec.model.num_layers, spec.setup.micro_batches
    recompute = RECOMPUTE if setup.checkpointing != "none" else 1
    per_layer = k * OPS_PER_LAYER * recompute + OPTIMIZER_OPS_PER_LAYER[setup.optimizer]
    ops = STEPS * (L * per_layer + OPS_PER_STEP + OPS_PER_MICRO_BATCH * k)
    return round(ops * (SHARDED if setup.shard != "none" else 1))


def step_flops(spec) -> int:
    """The arithmetic of the two steps: B·T·(6·P + 12·L·T·D) each (module docstring)."""
    model = spec.model
    T, L, D = model.context_length, model.num_layers, model.d_model
    return STEPS * int(spec.batch_size) * T * (6 * parameter_count(model) + 12 * L * T * D)


def step_work(spec, device: str) -> Work | None:
    """The estimated work of measuring `spec` on `device` ("meta" or "cpu"; None on "cuda", not estimated)."""
    if device not in ("meta", "cpu"):
        return None
    setup = spec.setup
    ops = traced_ops(spec)
    chunks = CHUNKS_PER_TENSOR * parameter_tensor_count(spec.model) * setup.world_size if setup.shard == "fsdp2" else 0
    flops = step_flops(spec) if device == "cpu" else 0
    processes = setup.world_size if device == "cpu" and setup.shard != "none" else 1
    per_process = ops * OP_SECONDS + chunks * SHARD_SECONDS + flops / CPU_FLOPS
    if processes > 1:
        per_process += PROCESS_SECONDS
    return Work(ops, chunks, flops, processes, processes * per_process)


def duration(seconds: float) -> str:
    """Seconds in words: '40 s', '12 minutes', '1.4 hours', '3.2 days'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:,.1f} days"
