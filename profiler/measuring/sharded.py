"""One rank of FSDP2 data parallelism (with tensor parallelism on a 2-D mesh where the setup asks for it), measured by
the storage tracker: simulated on one CPU at any world size, or for real in each process of a gloo group.

Simulation (device "meta"): torch's fake process group (backend "fake" with FakeStore; its collectives return at
once and move nothing) makes this process rank `rank` of `world_size`, and FakeTensorMode over CPU tensors makes
every tensor metadata only. The model is built on meta, sharded with fully_shard (each block, then the model, as
torchtitan does), then materialised as fake CPU tensors with `to_empty`: FSDP2 refuses meta parameters in training
and puts its gathered parameters and communication buffers on its mesh's device (CPU here). Everything FSDP2 does
(its all-gathers, reduce-scatters, padding, resharding, prefetching, the sharded AdamW step on DTensors) runs as in
a real job; only the data is missing. With tensor parallelism (setup.tensor_parallel t > 1) the mesh is 2-D ("dp",
"tp"; device_meshes), the blocks are split on "tp" first (model.tensor_parallel, torchtitan's plan) and fully_shard
runs on "dp"; DTensor's collectives (torch.distributed._functional_collectives) run on the fake group as FSDP2's do.

Real runs (device "cpu" inside an initialised gloo process group, e.g. under torchrun, or
profiler.measuring.ranks): the same model built on CPU, sharded the same way, trained on real tensors; each rank
measures itself with the same tracker, so the simulation can be checked against it byte for byte
(tests/test_sharded.py launches 2 and 4 processes, on 1-D meshes and on 1 x 2 and 2 x 2 ones). The simulation runs
CUDA's kernels where CPU's keep other tensors (model.cuda_kernels): a 16-bit LayerNorm's mean and rstd are float32
in a simulated rank, as on a GPU, and of the input's dtype in a gloo rank's CPU kernel.

Memory of a rank: its local tensors' storages (the tracker follows DTensor ops down to their local ops) and the
storages FSDP2 frees and re-allocates by resizing (its gathered parameters), through the tracker's resize hook.
Besides one device's categories, a rank's live bytes fall into SHARDED_CATEGORIES' four more, learnt from FSDP2's
own objects: unsharded_parameters (the gathered parameters of a block, FSDPParam.all_gather_outputs, a storage
each, resized to 0 when resharded), all_gather_buffers (the flat buffer one all-gather fills, before it is copied
out into the unsharded parameters), unsharded_gradients (the full gradients autograd computes for gathered
parameters, until FSDP2 copies them into the reduce-scatter input) and reduce_scatter_buffers (that input, kept
until the next reduce-scatter, and any reduce-scatter output that is not the rank's gradient shard). "parameters"
and "gradients" hold the rank's shards (padded to the same size on every rank), "optimizer_state" its AdamW state.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from analytic.exact.versions import release
from model.setup import Setup
from model.spec import StepSpec
from model.step import build, make_optimizer
from model.tensor_parallel import parallelize
from model.vocabulary import SHARDED_CATEGORIES

MINIMUM_SIMULATED = "2.12"  # see unsupported()


@dataclass
class FsdpRoles:
    """Storage ids of what FSDP2 allocates, by category (see the module docstring), learnt while a step runs."""

    all_gather_buffers: set[int] = field(default_factory=set)
    reduce_scatter_buffers: set[int] = field(default_factory=set)
    unsharded_gradients: set[int] = field(default_factory=set)
    unsharded_parameters: set[int] = field(default_factory=set)

    def categorise(self, category_of: dict[int, str]) -> None:
        """Add FSDP2's categories to one device's: they win over what autograd saved (linear layers save their
        gathered weight) but not over the rank's gradient shard (a reduce-scatter output)."""
        for name in ("reduce_scatter_buffers", "all_gather_buffers", "unsharded_gradients", "unsharded_parameters"):
            for sid in getattr(self, name):
                if category_of.get(sid) != "gradients":
                    category_of[sid] = name


def unsupported(simulated: bool = True, shard: str = "fsdp2") -> str | None:
    """Why this torch cannot run a sharded step here (None where it can): the measurement learns FSDP2's buffers
    where its allocators make them (DefaultAllGather and DefaultReduceScatter, from torch 2.9), and the
    simulation is claimed from MINIMUM_SIMULATED on, where it equals real gloo runs to the byte
    (tests/test_sharded.py in tools/torch_compat.py's runs). On 2.9 to 2.11 the simulated AdamW step on DTensors
    allocates more than the real one (on tiny, six times the rank's parameter shards in its optimizer phase), and
    before 2.11 c10d's all-gather and reduce-scatter have no Meta kernels of their own. Shard 'ddp' needs torch's
    replicate on FSDP2's engine (torch.distributed._composable.replicate_with_fsdp)."""
    try:
        from torch.distributed.fsdp._fully_shard import _fsdp_collectives as collectives
    except ImportError:
        collectives = None
    if not all(hasattr(collectives, name) for name in ("DefaultAllGather", "DefaultReduceScatter")):
        return (f"shard 'fsdp2' needs torch 2.9 or newer (FSDP2's DefaultAllGather and DefaultReduceScatter), "
                f"this is torch {torch.__version__}")
    if shard == "ddp":
        try:
            from torch.distributed._composable.replicate_with_fsdp import replicate  # noqa: F401
        except ImportError:
            return (f"shard 'ddp' needs torch's replicate on FSDP2's engine "
                    f"(torch.distributed._composable.replicate_with_fsdp), which torch {torch.__version__} lacks")
    if simulated and release(torch.__version__) < release(MINIMUM_SIMULATED):
        return (f"simulating shard 'fsdp2' needs torch {MINIMUM_SIMULATED} or newer (before it the fake process "
                f"group's step differs from a real one), this is torch {torch.__version__}")
    return None


class ShardedRank:
    """One rank of an FSDP2 step (or DDP, or FSDP2 with tensor parallelism) for profiler.measuring.measure: its
    process group, its meshes, its model and what its storages are; data_rank, the batch it trains on (the t ranks
    of a "tp" group share one, seeded by the group's "dp" index). Use as a context manager around the whole
    measurement (the fake mode must outlive the step)."""

    tracked_device = "cpu"
    categories = SHARDED_CATEGORIES

    def __init__(self, spec: StepSpec, device: str, rank: int = 0):
        setup = spec.setup
        if setup.shard not in ("fsdp2", "ddp"):
            raise ValueError(f"ShardedRank runs shard 'fsdp2' or 'ddp', got shard={setup.shard!r}")
        if device not in ("meta", "cpu"):
            raise ValueError(f"sharded steps run simulated (device meta) or in a gloo group (device cpu), got "
                             f"device {device!r}; CUDA (NCCL) runs are not measured yet")
        if device == "cpu" and not (dist.is_initialized() and dist.get_world_size() == setup.world_size):
            raise ValueError(f"a sharded step on device cpu runs in each process of a gloo group of "
                             f"world_size={setup.world_size}, which `measure --device cpu` (and "
                             f"profiler.measuring.ranks.measure_ranks) starts on this machine; use device meta to "
                             f"simulate it")
        if not 0 <= rank < setup.world_size:
            raise ValueError(f"rank must be in 0..{setup.world_size - 1}, got {rank}")
        if (why := unsupported(simulated=device == "meta", shard=setup.shard)) is not None:
            raise ValueError(why)
        self.spec = spec
        self.simulated = device == "meta"
        self.rank = rank if self.simulated else dist.get_rank()
        self.data_rank = self.rank // setup.tensor_parallel  # its batch: the t ranks of a "tp" group share one
        self.roles = FsdpRoles()
        self._stack = ExitStack()

    def __enter__(self) -> "ShardedRank":
        from torch._subclasses.fake_tensor import FakeTensorMode

        try:
            if self.simulated:
                self._stack.enter_context(fake_process_group(self.spec.setup.world_size, self.rank))
            # before tracking: the mesh's rank table is a host tensor (on a GPU too); FSDP2's buffers go to the
            # mesh's device
            self._meshes = device_meshes(self.spec.setup)
            self._rank_tables = [mesh.mesh for mesh in self._meshes if mesh is not None]
            if self.simulated:
                self._meta_model, _ = build(self.spec, "meta")  # outside the fake mode: no data, nothing tracked
                shard(self._meta_model, self.spec.setup, *self._meshes)
                # allow_non_fake_inputs: to_empty reads the meta parameters the model was built with
                self._stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
            self._stack.enter_context(watch_fsdp(self))
            self._stack.enter_context(unseen_sharding_propagation(self))
        except BaseException:
            self._stack.close()  # the fake process group goes with it
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def build(self, spec: StepSpec, tracker) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The sharded model (built on meta and materialised as fake CPU tensors when simulated, built on CPU when
        real) and AdamW over its DTensor parameters."""
        self.tracker = tracker
        for table in self._rank_tables:  # FSDP2 reads them as it shards DTensors: host memory, never counted
            tracker.sid(table, host=True)
        if self.simulated:
            model = self._meta_model.to_empty(device="cpu")  # the rank's shards, as fake CPU tensors
        else:
            model, _ = build(spec, "cpu")
            shard(model, spec.setup, *self._meshes)
        return model, make_optimizer(model, spec.setup.optimizer)

    def learn(self, model: torch.nn.Module) -> None:
        """After a step: the gathered parameters' storages (they outlive resharding: resized, not freed)."""
        for module in model.modules():
            state = getattr(module, "_get_fsdp_state", None)
            group = state()._fsdp_param_group if state is not None else None
            for fsdp_param in group.fsdp_params if group is not None else ():
                self.roles.unsharded_parameters.update(
                    sid for sid in map(self.tracker.sid, fsdp_param.all_gather_outputs) if sid is not None)

    def categorise(self, category_of: dict[int, str]) -> None:
        self.roles.categorise(category_of)


def device_meshes(setup: Setup) -> tuple:
    """The ranks' DeviceMeshes on CPU, (data-parallel mesh, tensor-parallel mesh or None): the world_size ranks
    1-D, or with tensor parallelism t > 1 a 2-D mesh ("dp", "tp") of world_size / t by t and its two dimensions,
    rank r at (r // t, r % t): a "tp" group holds t consecutive ranks, as torchtitan's meshes do. Made before
    anything is tracked: a mesh's rank table is a host tensor, and a dimension's mesh is made when first asked for."""
    from torch.distributed.device_mesh import init_device_mesh

    t = setup.tensor_parallel
    if t == 1:
        return init_device_mesh("cpu", (setup.world_size,)), None
    mesh = init_device_mesh("cpu", (setup.world_size // t, t), mesh_dim_names=("dp", "tp"))
    return mesh["dp"], mesh["tp"]


def shard(model: torch.nn.Module, setup: Setup, mesh, tp_mesh=None) -> None:
    """With tensor parallelism, first torchtitan's tensor-parallel plan over `tp_mesh` (the "tp" dimension,
    model.tensor_parallel.parallelize); then fully_shard on every block, then on the model (its embeddings, final
    norm and head), over `mesh` (the "dp" dimension with tensor parallelism), as torchtitan does;
    setup.reshard_after_forward goes to the blocks, and False to the model too; with
    setup.autocast, FSDP2's MixedPrecisionPolicy (parameters cast to that dtype for compute, gradients reduced in
    float32) in place of torch.autocast. Shard 'ddp': torch's replicate (FSDP2's engine over a replicate mesh:
    whole parameters, gradients all-reduced) on every block, then on the model, with the same policy."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if tp_mesh is not None:
        parallelize(model, setup, tp_mesh)
    policy = MixedPrecisionPolicy() if setup.autocast == "none" else MixedPrecisionPolicy(
        param_dtype=getattr(torch, setup.autocast), reduce_dtype=torch.float32)
    if setup.shard == "ddp":
        from torch.distributed._composable.replicate_with_fsdp import replicate

        for module in [*model.blocks, model]:
            replicate(module, mesh=mesh, mp_policy=policy)
        return
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=setup.reshard_after_forward, mp_policy=policy)
    # the root: FSDP2's default (None) keeps its parameters gathered from forward to backward, which uses them first
    fully_shard(model, mesh=mesh, reshard_after_forward=None if setup.reshard_after_forward else False,
                mp_policy=policy)


@contextmanager
def fake_process_group(world_size: int, rank: int):
    """torch's fake process group as the default group: this process is `rank` of `world_size`.

    DTensor's sharding propagation caches (the C++ fast path's and the Python one) keep the output specs of the ops
    they have seen, keyed by device meshes compared without their process groups: a later group's mesh of the same
    shape would get back a spec whose mesh names the groups of a destroyed one (tensor parallelism then fails on an
    unknown group name). They are cleared as each simulated group ends. init_process_group wraps sys.excepthook to
    prefix "[rank{r}]: " to every line of an uncaught error, and destroy_process_group does not unwrap it: it is put
    back, or a process that simulates many ranks would print such a prefix once per group it made."""
    from torch.distributed.tensor.debug import _clear_sharding_prop_cache
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised; a simulated sharded step makes its own")
    excepthook = sys.excepthook
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        yield
    finally:
        try:
            dist.destroy_process_group()
        finally:
            sys.excepthook = excepthook
            _clear_sharding_prop_cache()


@contextmanager
def watch_fsdp(run: ShardedRank):
    """Learn FSDP2's buffers where it makes them: its all-gather and reduce-scatter allocations (DefaultAllGather
    and DefaultReduceScatter's allocate) and the unsharded gradients handed to foreach_reduce."""
    from torch.distributed.fsdp._fully_shard import _fsdp_collectives as collectives
    from torch.distributed.fsdp._fully_shard import _fsdp_param_group as param_group

    def allocating(kind, role):
        original = kind.allocate

        def allocate(self, *args, **kwargs):
            tensor = original(self, *args, **kwargs)
            getattr(run.roles, role).add(run.tracker.sid(tensor))
            return tensor
        return allocate

    def reducing(*args, **kwargs):
        unsharded_grads = kwargs["unsharded_grads"] if "unsharded_grads" in kwargs else args[1]
        run.roles.unsharded_gradients.update(run.tracker.sid(grad) for grad in unsharded_grads)
        return foreach_reduce(*args, **kwargs)

    foreach_reduce = param_group.foreach_reduce
    patches = [(collectives.DefaultAllGather, "allocate", allocating(collectives.DefaultAllGather,
                                                                     "all_gather_buffers")),
               (collectives.DefaultReduceScatter, "allocate", allocating(collectives.DefaultReduceScatter,
                                                                         "reduce_scatter_buffers")),
               (param_group, "foreach_reduce", reducing)]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, _ in patches:
            if owner is param_group:
                setattr(owner, name, foreach_reduce)
            else:
                delattr(owner, name)  # the mixin's method shows through again


@contextmanager
def unseen_sharding_propagation(run: ShardedRank):
    """DTensor's sharding propagation untracked (StorageTracker.unseen): to learn an op's output shape it runs the
    op on fake tensors of the global shape (ShardingPropagator._propagate_tensor_meta_non_cached; loss parallel's
    handlers call it on every step), allocating nothing real. Its results are cached where no fake mode is active,
    so a real rank runs it once and a simulated one (inside FakeTensorMode) every time: left untracked, neither
    counts it (at t = 1 too, where it runs in the warm-up step's AdamW, the first step on FSDP2's DTensors: fake
    tensors, which a GPU's allocator never sees)."""
    from torch.distributed.tensor._sharding_prop import ShardingPropagator

    original = ShardingPropagator._propagate_tensor_meta_non_cached

    def propagate(self, *args, **kwargs):
        tracker = getattr(run, "tracker", None)
        if tracker is None:
            return original(self, *args, **kwargs)
        with tracker.unseen():
            return original(self, *args, **kwargs)

    ShardingPropagator._propagate_tensor_meta_non_cached = propagate
    try:
        yield
    finally:
        ShardingPropagator._propagate_tensor_meta_non_cached = original
