"""Mixed precision: the forward and the loss under torch.autocast, and autocast emulated where torch ignores it.

On CUDA and CPU, `autocast_region` is torch.autocast itself. Meta tensors ignore torch.autocast, so on meta
`AutocastEmulation` (a TorchFunctionMode, which runs above autograd as autocast's dispatch key does, so every cast
is recorded by autograd as a real one) applies one device's policy to the functions the model calls, with
autocast's rules (include/ATen/autocast_mode.h and aten/src/ATen/autocast_mode.cpp of torch 2.13):
  lower   cast every floating argument to the autocast dtype (matmuls, linear layers, attention kernels);
  fp32    cast every floating argument to float32;
  fp32_set_opt_dtype   run in float32 through the op's own dtype argument, unless the caller set one
          (softmax, log_softmax, sum);
  promote cast every floating argument to the widest among them (CPU: stack, cat);
  anything else runs on what it is given. A cast of a float32 leaf that requires grad (a weight) to the autocast
  dtype is cached until the outermost region ends, as cached_cast does: each weight is cast once per forward.
CUDA's cross_entropy is not on its lists and decomposes (aten/src/ATen/native/LossNLL.cpp cross_entropy_loss):
log_softmax in the input's own dtype, then nll_loss, which is on the fp32 list. CPU's lists put cross_entropy_loss
on the fp32 list and leave pow, rsqrt and softmax alone. The emulation with CPU's policy on meta is checked
byte for byte against real CPU autocast (tests/test_autocast.py); CUDA's is checked on a GPU (marked cuda).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode



LOWER = ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "scaled_dot_product_attention")
POLICIES = {
    # AT_FORALL_LOWER_PRECISION_FP, AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE (the names the model meets).
    # The efficient kernel's aten op stands for F.scaled_dot_product_attention, which CUDA casts before it.
    "cuda": {**dict.fromkeys(LOWER + ("_scaled_dot_product_flash_attention",
                                      "_scaled_dot_product_efficient_attention"), "lower"),
             **dict.fromkeys(("rsqrt", "pow", "nll_loss", "exp", "log", "layer_norm", "rms_norm"), "fp32"),
             **dict.fromkeys(("softmax", "log_softmax", "sum", "prod", "cumsum"), "fp32_set_opt_dtype"),
             "cross_entropy": "cross_entropy_decomposed"},
    # aten/src/ATen/autocast_mode.cpp, KERNEL_CPU lists.
    "cpu": {**dict.fromkeys(LOWER + ("conv1d", "conv2d", "conv3d", "addbmm"), "lower"),
            **dict.fromkeys(("nll_loss", "cross_entropy", "mse_loss", "l1_loss", "prod"), "fp32"),
            **dict.fromkeys(("stack", "cat", "index_copy"), "promote")},
}
POLICY_OPTIONS = tuple(POLICIES)


def _name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return name.rsplit(".", 1)[-1]


class AutocastEmulation(TorchFunctionMode):
    """One device's autocast policy applied to meta tensors (module docstring)."""

    def __init__(self, dtype: torch.dtype = torch.bfloat16, policy: str = "cuda"):
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"autocast policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.dtype, self.policy, self.rules = dtype, policy, POLICIES[policy]
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(weight) -> (weight, its cast)

    def __exit__(self, *exc):
        self.cache.clear()  # as leaving the outermost torch.autocast region clears autocast's cache
        return super().__exit__(*exc)

    def cast(self, value, dtype: torch.dtype):
        """cached_cast: a floating tensor in another dtype; a float32 weight cast to the low dtype is cached."""
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dtype in (dtype,
                                                                                                    torch.float64):
            return value
        cacheable = (dtype == self.dtype and value.dtype == torch.float32 and value.requires_grad and value.is_leaf
                     and not value._is_view())
        if not cacheable:
            return value.to(dtype)
        if id(value) not in self.cache:
            self.cache[id(value)] = (value, value.to(dtype))
        return self.cache[id(value)][1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = self.rules.get(_name(func))
        if rule == "lower":
            args, kwargs = self._cast_all(args, kwargs, self.dtype)
        elif rule == "fp32":
            args, kwargs = self._cast_all(args, kwargs, torch.float32)
        elif rule == "promote":
            widest = torch.float32 if any(t.dtype == torch.float32 for t in _tensors(args)) else self.dtype
            args, kwargs = self._cast_all(args, kwargs, widest)
        elif rule == "fp32_set_opt_dtype" and kwargs.get("dtype") is None:
            first = next(iter(_tensors(args)), None)
            if first is not None and first.is_floating_point() and first.dtype != torch.float64:
                kwargs = {**kwargs, "dtype": torch.float32}
        elif rule == "cross_entropy_decomposed":
            return self._cross_entropy(*args, **kwargs)
        return func(*args, **kwargs)

    def _cast_all(self, args, kwargs, dtype):
        """Every argument cast, the last first: the wrappers cast with a C++ pack expansion,
        `(*F)(cached_cast(to_type, args, device_type)...)`, whose arguments GCC (Linux builds of torch) evaluates
        right to left, so a linear layer's weight is cast before its input."""
        cast = lambda value: [self.cast(v, dtype) for v in value] if isinstance(value, (list, tuple)) \
            else self.cast(value, dtype)  # noqa: E731
        kwargs = {key: cast(value) for key, value in reversed(kwargs.items())}
        return tuple(reversed([cast(a) for a in reversed(args)])), kwargs

    def _cross_entropy(self, logits, targets, weight=None, size_average=None, ignore_index=-100, reduce=None,
                       reduction="mean", label_smoothing=0.0):
        """cross_entropy_loss as CUDA autocast runs it for class-index targets: log_softmax in the logits' dtype
        (the decomposition passes it explicitly, so fp32_set_opt_dtype leaves it), then nll_loss, on the fp32
        list."""
        if label_smoothing or size_average is not None or reduce is not None:
            raise NotImplementedError("the autocast emulation's cross_entropy takes weight, ignore_index, reduction")
        log_probs = torch.log_softmax(logits, 1, dtype=logits.dtype)
        return F.nll_loss(self.cast(log_probs, torch.float32), targets, weight=weight, ignore_index=ignore_index,
                          reduction=reduction)


def _tensors(args):
    for value in args:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def autocast_region(setup, device: torch.device | str, policy: str = "cuda"):
    """The context the forward and the loss run in: nothing without setup.autocast (a model.setup.Setup);
    torch.autocast on CUDA and CPU; on meta the emulation of `policy`'s autocast. Sharded (FSDP2, DDP) nothing:
    their MixedPrecisionPolicy casts (profiler.measuring.sharded)."""
    if setup.autocast == "none" or setup.shard != "none":  # FSDP2 and replicate: their MixedPrecisionPolicy
        return contextlib.nullcontext()
    dtype = getattr(torch, setup.autocast)
    device_type = torch.device(device).type
    if device_type == "meta":
        return AutocastEmulation(dtype, policy)
    return torch.autocast(device_type, dtype=dtype)


def active_emulation() -> AutocastEmulation | None:
    """The innermost AutocastEmulation in effect, if any."""
    modes = [mode for mode in torch.overrides._get_current_function_mode_stack() if isinstance(mode, AutocastEmulation)]
    return modes[-1] if modes else None


def with_autocast_emulation(contexts=None):
    """A checkpoint context_fn: `contexts`' (forward, recomputation) contexts (none by default), the
    recomputation also under a fresh AutocastEmulation like the one active when the block ran forward. Real
    torch.autocast needs none of this: checkpoint saves and restores its state itself."""
    def context_fn():
        forward, recompute = contexts() if contexts is not None else (contextlib.nullcontext(),
                                                                      contextlib.nullcontext())
        emulation = active_emulation()
        if emulation is None:
            return forward, recompute
        return forward, Nested(AutocastEmulation(emulation.dtype, emulation.policy), recompute)
    return context_fn


class Nested:
    """Contexts entered in order, and held for as long as this object is: checkpoint holds its recomputation
    context for the life of the block's frame (until the block's backward ends), and with it selective
    checkpointing's cache, whose entries that an early-stopped recomputation did not reach stay alive until then.
    A generator context (contextlib.contextmanager) would drop its contexts once used, and with them that cache."""

    def __init__(self, *contexts):
        self.contexts = contexts
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        for context in self.contexts:
            self.stack.enter_context(context)
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)
