"""Real FSDP2 steps on CPU: one process per rank in a gloo group on this machine, each measuring itself with the
storage tracker (profiler.measuring.sharded), to check the simulation on the fake process group against them."""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes, is_traceable_wrapper_subclass_type
from torch.utils._pytree import tree_flatten

from model.spec import StepSpec
from profiler.measuring.measure import measure
from profiler.measuring.tracker import WAIT_TENSOR


def measure_ranks(spec: StepSpec) -> list[dict]:
    """Every rank of a real FSDP2 step on CPU: the setup's world_size processes in a gloo group on this machine, each
    measuring itself (profiler.measuring.measure on device cpu, FLOPs not counted); their Measurement dicts, by
    rank. For small configs: each process holds its real tensors."""
    with tempfile.TemporaryDirectory() as folder:
        world_size = spec.setup.world_size
        multiprocessing.spawn(_measure_rank, args=(spec, _free_port(), folder), nprocs=world_size)
        return [json.loads((Path(folder) / f"rank{rank}.json").read_text()) for rank in range(world_size)]


def _measure_rank(rank: int, spec: StepSpec, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=spec.setup.world_size)
    try:
        with settled_collectives():
            result = measure(spec, "cpu", count_flops=False)
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result.to_dict()))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def settled_collectives(timeout: float = 10.0):
    """FSDP2's all-gathers and reduce-scatters, each waited for until gloo has let go of its tensors.

    A gloo collective runs on a worker thread that keeps its Work, and with it the input and output tensors, until
    a moment after the collective completes; a buffer that FSDP2 has already dropped is then freed on that thread,
    early or late by chance, and the measured peak varies from run to run. Each collective here returns only once
    its tensors are back to the references they had before it began (Tensor._use_count), so every buffer is freed
    where the Python code drops it: the order the fake process group gives, and the one a CUDA caching allocator
    sees when NCCL frees its stashed tensors on wait. What gloo allocates for itself while it enqueues a
    collective (its reduce-scatter copies the input) is left out of the tracking: NCCL and the fake group
    allocate nothing there. The all-reduce of shard 'ddp' (torch.distributed.all_reduce, called by FSDP2's
    foreach_reduce) is settled the same way, and so are the functional collectives of tensor parallelism
    (SettledFunctionalCollectives).
    """

    from torch.distributed.fsdp._fully_shard import _fsdp_collectives as collectives

    def run_settled(what: str, tensors: tuple, collective):
        """collective(), waited for, then held until `tensors` are back to the references they had before it."""
        before = [tensor._use_count() for tensor in tensors]
        with _disable_current_modes():  # gloo's own copies (NCCL and the fake group make none): not tracked
            work = collective()
        if work is not None:
            work.wait()
        deadline = time.monotonic() + timeout
        while any(tensor._use_count() > count for tensor, count in zip(tensors, before)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gloo kept the tensors of a {what} for over {timeout} s")
            time.sleep(0)
        return work

    def settled(kind):
        original = kind.__call__

        def call(self, output_tensor, input_tensor, *args, **kwargs):
            return run_settled(kind.__name__, (output_tensor, input_tensor),
                               lambda: original(self, output_tensor, input_tensor, *args, **kwargs))
        return call

    def settled_all_reduce(tensor, *args, **kwargs):
        return run_settled("all_reduce", (tensor,), lambda: all_reduce(tensor, *args, **kwargs))

    originals = {kind: kind.__call__ for kind in (collectives.DefaultAllGather, collectives.DefaultReduceScatter)}
    all_reduce = dist.all_reduce
    for kind in originals:
        kind.__call__ = settled(kind)
    dist.all_reduce = settled_all_reduce
    try:
        with SettledFunctionalCollectives(timeout):
            yield
    finally:
        for kind, original in originals.items():
            kind.__call__ = original
        dist.all_reduce = all_reduce


class SettledFunctionalCollectives(TorchDispatchMode):
    """The functional collectives (torch.ops._c10d_functional: DTensor's redistributions under tensor parallelism,
    loss parallel's all-reduces), each waited for at once and held until gloo has let go of its tensors (see
    settled_collectives): its inputs back to the references they had before it, its outputs to the caller's one.
    Beneath the storage tracker (entered before it), so the tracker sees each collective's output as it is
    returned."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(is_traceable_wrapper_subclass_type(kind) for kind in types):
            return NotImplemented  # a DTensor's op: its local ops come back here
        kwargs = kwargs or {}
        if func.namespace != "_c10d_functional" or func is WAIT_TENSOR:
            return func(*args, **kwargs)
        inputs = [value for value in tree_flatten((args, kwargs))[0] if isinstance(value, torch.Tensor)]
        held = [(tensor, tensor._use_count()) for tensor in inputs]
        out = func(*args, **kwargs)
        for tensor in (value for value in tree_flatten(out)[0] if isinstance(value, torch.Tensor)):
            WAIT_TENSOR(tensor)
            if not any(tensor is value for value in inputs):
                held.append((tensor, 1))
        deadline = time.monotonic() + self.timeout
        while any(tensor._use_count() > count for tensor, count in held):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gloo kept the tensors of a {func} for over {self.timeout} s")
            time.sleep(0)
        return out
