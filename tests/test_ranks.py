"""profiler.measuring.ranks in this process, on a gloo group of one rank (the real runs of several ranks, one process
each, are in tests/test_sharded.py): settled_collectives patches FSDP2's collectives and all_reduce for its block
only, and a settled all-reduce returns its result with the tensor back to its own references."""
import pytest
import torch
import torch.distributed as dist

from profiler.measuring.sharded import unsupported


@pytest.mark.skipif(unsupported(simulated=False) is not None, reason=str(unsupported(simulated=False)))
def test_settled_collectives_on_a_gloo_group_of_one_rank():
    from torch.distributed.fsdp._fully_shard import _fsdp_collectives as collectives

    from profiler.measuring.ranks import settled_collectives

    originals = (dist.all_reduce, collectives.DefaultAllGather.__call__, collectives.DefaultReduceScatter.__call__)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with settled_collectives():
            assert dist.all_reduce is not originals[0]
            assert collectives.DefaultAllGather.__call__ is not originals[1]
            tensor = torch.arange(3.0)
            dist.all_reduce(tensor)
            assert tensor.tolist() == [0.0, 1.0, 2.0] and tensor._use_count() == 1
    finally:
        dist.destroy_process_group()
    assert (dist.all_reduce, collectives.DefaultAllGather.__call__,
            collectives.DefaultReduceScatter.__call__) == originals
