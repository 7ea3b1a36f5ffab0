"""Storage-lifetime memory tracking with a TorchDispatchMode: works the same on `meta` and real CPU tensors.

Every op's outputs pass through the mode; a storage on the tracked device that has not been seen before is an
allocation (its `nbytes`), and a weakref callback on its `untyped_storage()` records the free when the storage
dies. Views and in-place ops return storages already seen, so they allocate nothing; a storage shared by several
tensors counts once. The log is a list of events (+1 | -1, storage id, nbytes) with phase marks between them.

Roles are learnt as the step runs (which storages are parameters, buffers, inputs, gradients, optimizer state,
saved for backward) and each storage gets one category (model.vocabulary.CATEGORIES) by the first role that
holds in this order: parameters, buffers, inputs, optimizer_state, gradients, saved_activations,
optimizer_temporaries (allocated during the optimizer phase), temporaries. Replaying the events with numpy then
gives live bytes by category after every event: phase peaks, the categories at a peak, the timeline.

Host scalars: AdamW's for-loop and foreach implementations keep each parameter's `step` counter in a 0-dim CPU
tensor and wrap constants in 0-dim CPU tensors. On CUDA and meta that is host memory, never counted; on a CPU run
the host is the device, so such 0-dim storages allocated by the optimizer phase are left out there too. That
keeps meta and CPU figures identical, and both equal to what a CUDA run's allocator sees.
"""
from __future__ import annotations

import itertools
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass, \
    is_traceable_wrapper_subclass_type
from torch.utils._pytree import tree_flatten

from model.implementations import UserLM
from model.vocabulary import CATEGORIES, COMPONENTS

ALLOC, FREE = 1, -1
aten = torch.ops.aten
# Outputs that the CUDA kernels create on the host, though their meta kernels create them on meta: the fused SDPA
# kernels' RNG seed and offset. Without dropout, flash_api.cpp (mha_fwd) and attention.cu
# (_efficient_attention_forward) allocate them with at::empty({}, at::dtype(at::kLong)), a CPU tensor, outside
# CUDA graph capture. Never counted, on any device.
HOST_OUTPUTS = {aten._scaled_dot_product_flash_attention.default: (6, 7),
                aten._scaled_dot_product_efficient_attention.default: (2, 3)}

# torch's Meta kernel of the functional collectives' wait (torch/distributed/_functional_collectives.py,
# _wait_tensor_meta) returns empty_like(input), a new storage, where the CPU and CUDA kernels
# (c10d's Functional.cpp) wait for the collective and return the input itself: the tracker returns the input, so a
# simulated DTensor collective (tensor parallelism) allocates what a real one does.
WAIT_TENSOR = torch.ops._c10d_functional.wait_tensor.default


@dataclass
class Mark:
    name: str
    event_index: int  # events[:event_index] happened before the mark
    op_index: int


@dataclass
class SavedTensor:
    sid: int
    component: str
    layer: int | None  # None outside the blocks
    op: str = ""  # the op that allocated the storage ('aten.mm'), '' where it was not allocated by an op


class StorageTracker(TorchDispatchMode):
    """Logs allocations and frees of storages on one device type ('meta', 'cpu' or 'cuda')."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type
        self.events: list[tuple[int, int, int]] = []  # (ALLOC | FREE, sid, nbytes)
        self.event_ops: list[int] = []  # op index at each event
        self.ops: list = []  # every op seen, in order (OpOverloads)
        self.op_index: dict[int, int] = {}  # sid -> index in ops of the op that allocated it
        self.on_op = None  # optional callback(func, args, kwargs, out), e.g. a FLOP counter
        self.marks: list[Mark] = []
        self.nbytes: dict[int, int] = {}
        self._sid_of: dict[int, int] = {}  # StorageImpl address -> sid, for live storages
        self._refs: dict[int, weakref.ref] = {}
        self._ids = itertools.count()
        self.ignore_host_scalars = False  # set by the caller during the optimizer phase of a CPU run
        self.ignored: set[int] = set()  # sids of host scalars left out (see module docstring)
        self._current_op = False  # registering the outputs of the op last appended to ops
        self._unseen = False  # inside unseen(): ops pass untracked

    # --- the dispatch mode -------------------------------------------------------------------------------
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """False: TorchDispatchMode's hook (torch/utils/_python_dispatch.py) then leaves __torch_dispatch__
        unwrapped; by default it wraps it in torch._disable_dynamo, which costs a call through dynamo's
        eval-frame guard on every op. Nothing here is ever compiled, so the guard has nothing to disable."""
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(is_traceable_wrapper_subclass_type(kind) for kind in types):
            return NotImplemented  # a DTensor's op: its own dispatch runs the local ops, which come back here
        kwargs = kwargs or {}
        if self._unseen:
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if func is WAIT_TENSOR:
            out = args[0]  # what the real kernel returns; the Meta kernel's empty_like is dropped unseen
        self.ops.append(func)
        for index in HOST_OUTPUTS.get(func, ()):
            self.sid(out[index], host=True)
        self._current_op = True
        if isinstance(out, torch.Tensor):
            self.sid(out)
        elif isinstance(out, (tuple, list)):
            for value in tree_flatten(out)[0]:
                if isinstance(value, torch.Tensor):
                    self.sid(value)
        self._current_op = False
        if self.on_op is not None:
            self.on_op(func, args, kwargs, out)
        return out

    def sid(self, tensor: torch.Tensor, host: bool = False) -> int | None:
        """The id of the tensor's storage, registering it as an allocation when it is new (left out of the events
        with `host`: see HOST_OUTPUTS); None if untracked."""
        if is_traceable_wrapper_subclass(tensor):  # a DTensor: the storage of its local shard
            tensor = getattr(tensor, tensor.__tensor_flatten__()[0][0])
        storage = tensor.untyped_storage()
        key = storage._cdata
        sid = self._sid_of.get(key)
        if sid is not None or tensor.device.type != self.device_type:  # a fake tensor's storage is on meta
            return sid
        sid = next(self._ids)
        nbytes = storage.nbytes()
        self._sid_of[key] = sid
        self.nbytes[sid] = nbytes
        self._refs[sid] = weakref.ref(storage, lambda _, key=key, sid=sid: self._free(key, sid))
        if host or (self.ignore_host_scalars and tensor.dim() == 0):
            self.ignored.add(sid)
            return sid
        self.events.append((ALLOC, sid, nbytes))
        self.event_ops.append(len(self.ops))
        if self._current_op:
            self.op_index[sid] = len(self.ops) - 1
        return sid

    @contextmanager
    def unseen(self):
        """Ops inside run untracked, their storages never seen: work that is no part of the step (DTensor's
        sharding propagation running an op on fake tensors of the global shape to learn its output's shape)."""
        previous, self._unseen = self._unseen, True
        try:
            yield
        finally:
            self._unseen = previous

    def op_name(self, sid: int) -> str:
        """'aten.mm': the op that allocated storage `sid`; '' where none did (a parameter, an input)."""
        index = self.op_index.get(sid)
        return "" if index is None else str(self.ops[index].overloadpacket)

    def __enter__(self):
        self._resize = torch.UntypedStorage.resize_
        torch.UntypedStorage.resize_ = lambda storage, size: self._resized(storage, size)
        return super().__enter__()

    def __exit__(self, *exc):
        torch.UntypedStorage.resize_ = self._resize
        return super().__exit__(*exc)

    def _resized(self, storage, size):
        """UntypedStorage.resize_ while tracking: FSDP2 frees and re-allocates its unsharded parameters by resizing
        their storage (to 0 and back), which no op shows; a tracked storage's resize is a free of its old bytes
        and an allocation of the new ones."""
        result = self._resize(storage, size)
        sid = self._sid_of.get(storage._cdata)
        if sid is not None and sid not in self.ignored and storage.nbytes() != self.nbytes[sid]:
            self.events.append((FREE, sid, self.nbytes[sid]))
            self.events.append((ALLOC, sid, storage.nbytes()))
            self.event_ops.extend([len(self.ops)] * 2)
            self.nbytes[sid] = storage.nbytes()
        return result

    def _free(self, key: int, sid: int) -> None:
        if self._sid_of.get(key) == sid:
            del self._sid_of[key]
        self._refs.pop(sid, None)
        if sid not in self.ignored:
            self.events.append((FREE, sid, self.nbytes[sid]))
            self.event_ops.append(len(self.ops))

    def mark(self, name: str) -> Mark:
        """A named point between events (train_step's phase marks), kept in self.marks and returned."""
        self.marks.append(Mark(name, len(self.events), len(self.ops)))
        return self.marks[-1]


class SavedTensorRecorder:
    """Which storages autograd saves for backward, and the component (module) that saved each one first.

    Forward pre/post hooks on the component modules (`attributed_modules`) keep a stack of frames (component,
    layer, in a block); the pack hook of `saved_tensors_hooks` charges each saved storage to the innermost component
    active when it was first saved, with the op that allocated it.
    """

    def __init__(self, model: torch.nn.Module, tracker: StorageTracker, kept_ops: frozenset = frozenset()):
        self.tracker = tracker
        self.kept_ops = kept_ops  # ops whose outputs selective checkpointing keeps (note_op)
        self.saved: dict[int, SavedTensor] = {}
        self._stack: list[tuple[str, int | None, bool]] = [("other", None, False)]
        self._handles = []
        for module, frame in attributed_modules(model):
            self._handles.append(module.register_forward_pre_hook(lambda *_, frame=frame: self._stack.append(frame)))
            self._handles.append(module.register_forward_hook(self._leave, always_call=True))  # also on a raise

    def current_component(self) -> str | None:
        """The innermost component running, for FLOPs: None outside components and directly inside a block's
        `checkpoint` wrapper or `body` (the block's ops between its components stay unattributed)."""
        component = self._stack[-1][0]
        return None if component in ("other", "checkpoint", "body") else component

    def in_block(self) -> bool:
        """Whether a block's body is running (in backward: being recomputed by checkpointing)."""
        return any(block for _, _, block in self._stack)

    def note_op(self, func, out) -> None:
        """Selective checkpointing keeps the outputs of the ops its policy saves in a store of its own, which
        saved_tensors_hooks do not see: record them as saved here (the tracker's on_op, in forward)."""
        if func in self.kept_ops and self.in_block() and isinstance(out, torch.Tensor):
            self._pack(out)

    def _leave(self, *_) -> None:  # a forward hook must return None, or it replaces the module's output
        self._stack.pop()

    def _pack(self, tensor):
        sid = self.tracker.sid(tensor)
        if sid is not None and sid not in self.saved:
            component, layer, _ = next(frame for frame in reversed(self._stack) if frame[0] != "body")
            self.saved[sid] = SavedTensor(sid, component, layer, self.tracker.op_name(sid))
        return tensor

    @contextmanager
    def recording(self):
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
            yield

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def attributed_modules(model: torch.nn.Module):
    """(module, frame) for every module that saved tensors and FLOPs are attributed to; a frame is (component,
    layer, whether it runs a block's body). The built-in model: its named components (component_of, layer_of),
    a block's `body` the frame of the block. A user's model (model.implementations.UserLM): every module of it,
    named by its path, inside a layer (layer_list) by its path in the layer ('mlp.act'; 'block' for the layer's
    own ops), every module of a layer running a block's body."""
    if not isinstance(model, UserLM):
        for name, module in model.named_modules():
            component = component_of(name)
            if component is not None:
                yield module, (component, layer_of(name), component == "body")
        return
    layers = layer_list(model.inner, model.config.num_layers)
    for name, module in model.inner.named_modules():
        if not name or (layers is not None and name == layers):
            continue
        if layers is not None and name.startswith(layers + "."):
            index, _, inside = name[len(layers) + 1:].partition(".")
            yield module, (inside or "block", int(index), True)
        else:
            yield module, (name, None, False)


def layer_list(model: torch.nn.Module, num_layers: int) -> str | None:
    """The path of the model's list of layers: the first nn.ModuleList (or nn.Sequential) of num_layers children
    ('transformer.h' in Hugging Face's GPT-2, 'model.layers' in its Llama); None where there is none."""
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential)) and len(module) == num_layers \
                and all(str(index) == child for index, (child, _) in enumerate(module.named_children())):
            return name
    return None


def component_of(module_name: str) -> str | None:
    """'blocks.3.attn.q_proj' -> 'q_proj'; 'position_embedding' -> 'embedding'; non-components -> None."""
    last = module_name.rsplit(".", 1)[-1]
    if last == "position_embedding":
        return "embedding"
    return last if last in COMPONENTS or last == "body" else None  # a block's body: a frame, not a component


def layer_of(module_name: str) -> int | None:
    parts = module_name.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[0] == "blocks" else None


@dataclass
class Replay:
    """Live bytes after every event, in total and by category (rows follow `categories`)."""

    live: np.ndarray  # [n_events + 1]; live[0] = 0 before any event, live[i] after event i-1
    by_category: np.ndarray  # [len(categories), n_events + 1]
    event_ops: np.ndarray  # [n_events + 1] op index of each point
    categories: tuple[str, ...] = CATEGORIES

    def at(self, point: int) -> dict[str, int]:
        return {name: int(value) for name, value in zip(self.categories, self.by_category[:, point])}

    def peak_point(self, start: int, stop: int) -> int:
        """The first point of the highest live total among points start..stop (a mark's point included)."""
        return start + int(np.argmax(self.live[start:stop + 1]))


def replay(tracker: StorageTracker, category_of: dict[int, str], categories: tuple[str, ...] = CATEGORIES) -> Replay:
    signed = np.fromiter((sign * nbytes for sign, _, nbytes in tracker.events), dtype=np.int64,
                         count=len(tracker.events))
    codes = np.fromiter((categories.index(category_of.get(sid, "temporaries")) for _, sid, _ in tracker.events),
                        dtype=np.int64, count=len(tracker.events))
    by_category = np.zeros((len(categories), len(signed) + 1), dtype=np.int64)
    for index in range(len(categories)):
        by_category[index, 1:] = np.cumsum(np.where(codes == index, signed, 0))
    event_ops = np.concatenate([[0], np.asarray(tracker.event_ops, dtype=np.int64)])
    return Replay(by_category.sum(axis=0), by_category, event_ops, categories)


@dataclass
class Roles:
    """Storage ids by role, filled in as the step runs."""

    parameters: set[int] = field(default_factory=set)
    buffers: set[int] = field(default_factory=set)
    inputs: set[int] = field(default_factory=set)
    optimizer_state: set[int] = field(default_factory=set)
    gradients: set[int] = field(default_factory=set)
    saved_activations: set[int] = field(default_factory=set)
    optimizer_temporaries: set[int] = field(default_factory=set)

    def categories(self) -> dict[int, str]:
        category_of: dict[int, str] = {}
        for name in ("optimizer_temporaries", "saved_activations", "gradients", "optimizer_state", "inputs",
                     "buffers", "parameters"):  # later roles win: the order of precedence, reversed
            category_of.update(dict.fromkeys(getattr(self, name), name))
        return category_of
