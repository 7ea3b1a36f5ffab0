"""The kernels CUDA runs, where the tensors cannot choose them: dropout and F.scaled_dot_product_attention.

Two calls of a model run other kernels on meta (and CPU) than on CUDA, with other tensors saved for backward:

  dropout   at::dropout (aten/src/ATen/native/Dropout.cpp) runs native_dropout, which keeps a bool mask, when
            `is_fused_kernel_acceptable`: a CUDA input, training, 0 < p < 1 and a non-empty input. Elsewhere it
            multiplies by noise of the input's dtype and keeps that. In-place dropout takes the noise path on
            CUDA too, and is left alone.
  SDPA      at::scaled_dot_product_attention (aten/src/ATen/native/transformers/attention.cpp) asks
            _fused_sdp_choice for a kernel on CUDA; on meta it always runs the math composite. The aten ops of the
            fused kernels have meta kernels that return what the CUDA kernels return (an output, an fp32
            logsumexp, RNG state) and autograd records their CUDA backward nodes.

One op runs another kernel on fake CPU tensors (a simulated sharded rank's) than on CUDA:

  LayerNorm native_layer_norm keeps mean and rstd in the accumulate type, float32 for 16-bit inputs, on CUDA
            (aten/src/ATen/native/cuda/layer_norm_kernel.cu) and on meta; on CPU, and so in the fake kernel of a
            CPU tensor (torch._refs.native_layer_norm), in the input's dtype: autograd saves them for backward.

`CudaKernels`, active for a whole step (forward, a checkpoint's recomputation in backward, the optimizer step),
gives a simulated step's fake tensors CUDA's LayerNorm (cuda_layer_norm, in place of the fake kernel torch registers;
not a real rank's, whose DTensors run that fake kernel to propagate shardings of CPU tensors), routes F.dropout to
native_dropout on every device but CUDA (where at::dropout already does), and on simulated tensors (meta, fake)
sends F.scaled_dot_product_attention to the kernel the setup's `attention` option names:
  sdpa-flash      aten._scaled_dot_product_flash_attention,
  sdpa-efficient  aten._scaled_dot_product_efficient_attention, each with key/value heads passed as they come
                  (grouped ones with enable_gqa: both CUDA kernels take them so), without an attn_mask;
  sdpa-math       the math composite, as on CUDA (without dropout: its at::dropout would keep noise on meta);
  explicit        a model that calls SDPA anyway gets the kernel CUDA's priority order picks without cuDNN
                  (flash, then efficient, then math) on an sm80+ GPU.
What cannot be simulated (a fused kernel that would pad the head size, a fused kernel given a mask, math with
dropout) raises NotSimulated with the reason. `kernel_region(attention, device, simulated)` is the context a step
runs in.
"""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch._prims_common import get_computation_dtype
from torch._subclasses import fake_impls
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel

from model.autocast import active_emulation

LAYER_NORM = torch.ops.aten.native_layer_norm.default
SDPA_BACKENDS = {"sdpa-math": SDPBackend.MATH, "sdpa-flash": SDPBackend.FLASH_ATTENTION,
                 "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION}


class NotSimulated(ValueError):
    """A call whose CUDA kernel the simulation cannot run on meta (the message says which and why)."""


def simulated(tensor) -> bool:
    """Whether `tensor` has no data: on meta, or a fake tensor (FakeTensorMode, which sharded steps simulate in)."""
    return tensor.device.type == "meta" or isinstance(tensor, FakeTensor)


class CudaKernels:
    """CUDA's dropout everywhere, on simulated tensors the SDPA kernel of `attention`, and in a simulated step CUDA's
    LayerNorm (module docstring), for as long as the context is entered: F.dropout and F.scaled_dot_product_attention
    are replaced in torch.nn.functional by this object's methods, which models reach through that module at every
    call (nn.Dropout, Hugging Face's attention functions, nanoGPT). A TorchFunctionMode would not do: autograd runs
    backward, and with it a checkpoint's recomputation, without the function modes of the forward. LayerNorm's fake
    kernel is replaced in torch's table of them (torch._subclasses.fake_impls), and the results FakeTensorMode
    cached for it are forgotten on entering and leaving: its dispatch cache keys an op and its arguments, not the
    kernel that ran."""

    def __init__(self, attention: str = "explicit", simulated_step: bool = False):
        self.attention, self.simulated_step = attention, simulated_step
        self._originals: dict = {}

    def __enter__(self) -> "CudaKernels":
        self._fake_layer_norm = fake_impls.op_implementations_dict[LAYER_NORM]
        self._originals = {"dropout": F.dropout, "scaled_dot_product_attention": F.scaled_dot_product_attention}
        F.dropout, F.scaled_dot_product_attention = self.dropout, self.sdpa
        if self.simulated_step:
            forget_cached(LAYER_NORM)
            fake_impls.op_implementations_dict[LAYER_NORM] = functools.partial(cuda_layer_norm,
                                                                               self._fake_layer_norm)
        return self

    def __exit__(self, *exc) -> None:
        for name, function in self._originals.items():
            setattr(F, name, function)
        if self.simulated_step:
            fake_impls.op_implementations_dict[LAYER_NORM] = self._fake_layer_norm
            forget_cached(LAYER_NORM)

    def dropout(self, x, p: float = 0.5, training: bool = True, inplace: bool = False):
        """at::dropout as CUDA runs it: native_dropout (a bool mask kept for backward) where its fused kernel
        takes the call (training, 0 < p < 1, a non-empty input, not in place), else F.dropout itself."""
        if training and not inplace and 0 < p < 1 and x.numel() > 0:
            return torch.native_dropout(x, p, True)[0]
        return self._originals["dropout"](x, p, training, inplace)

    def sdpa(self, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        if not simulated(query):
            return self._originals["scaled_dot_product_attention"](query, key, value, attn_mask, dropout_p,
                                                                   is_causal, scale=scale, enable_gqa=enable_gqa)
        emulation = active_emulation()
        if emulation is not None and emulation.rules.get("scaled_dot_product_attention") == "lower":
            # what autocast does to F.scaled_dot_product_attention before any kernel is chosen (the lower list)
            (query, key, value, attn_mask), _ = emulation._cast_all((query, key, value, attn_mask), {},
                                                                    emulation.dtype)
        kernel = self.attention if self.attention != "explicit" else cuda_choice(query, key, value, attn_mask)
        heads, kv_heads = query.shape[-3], key.shape[-3]
        if kernel != "sdpa-math" and kv_heads != heads and not enable_gqa:
            raise NotSimulated(f"{kernel} with {heads} query heads and {kv_heads} key/value heads needs "
                               "enable_gqa=True (CUDA raises 'No available kernel')")
        if kernel == "sdpa-math":
            if dropout_p > 0:
                raise NotSimulated("the math kernel with dropout_p > 0 is not simulated: its at::dropout keeps a "
                                   "bool mask on CUDA and noise of the input's dtype on meta")
            return self._originals["scaled_dot_product_attention"](query, key, value, attn_mask, dropout_p,
                                                                   is_causal, scale=scale, enable_gqa=enable_gqa)
        if query.shape[-1] % 8 or key.shape[-1] % 8 or value.shape[-1] % 8:
            raise NotSimulated(f"{kernel} with a head size of {query.shape[-1]} (not a multiple of 8): CUDA pads "
                               "it, which is not simulated")
        if kernel == "sdpa-efficient" and kv_heads != heads:
            raise NotSimulated(f"sdpa-efficient with {heads} query heads and {kv_heads} key/value heads is not "
                               "simulated (the meta kernel's backward returns key and value gradients of the "
                               "query's heads); use sdpa-flash, or repeat the key/value heads")
        if attn_mask is not None:
            raise NotSimulated(f"{kernel} with an attn_mask is not simulated (flash takes none; attention.cpp "
                               "converts and pads the efficient kernel's mask); use sdpa-math, or is_causal=True")
        if kernel == "sdpa-flash":
            if query.dtype not in (torch.float16, torch.bfloat16) or query.shape[-1] > 256:
                raise NotSimulated(f"sdpa-flash runs float16 and bfloat16 with head sizes up to 256, got "
                                   f"{str(query.dtype).removeprefix('torch.')} and {query.shape[-1]} (CUDA raises "
                                   "'No available kernel')")
            return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal,
                                                                      False, scale=scale)[0]
        return torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, None, True, dropout_p,
                                                                      is_causal, scale=scale)[0]


def forget_cached(op) -> None:
    """Drop FakeTensorMode's cached results of `op` (its dispatch cache is one for the process)."""
    for key in [key for key in FakeTensorMode.cache if key.key[0] is op]:
        del FakeTensorMode.cache[key]


def cuda_layer_norm(fake_kernel, fake_mode, func, *args, **kwargs):
    """native_layer_norm of fake tensors as CUDA runs it: torch's fake kernel (`fake_kernel`), its mean and rstd in
    the accumulate type (float32 for 16-bit inputs) whatever the tensors' device."""
    out, mean, rstd = fake_kernel(fake_mode, func, *args, **kwargs)
    accumulate = get_computation_dtype(args[0].dtype)
    return out, mean.to(accumulate), rstd.to(accumulate)


def cuda_choice(query, key, value, attn_mask) -> str:
    """The kernel CUDA's priority order (flash, efficient, math; cuDNN left out) picks on an sm80+ GPU for a model
    that calls SDPA: flash for 16-bit inputs without a mask and head sizes up to 256, else efficient for head
    sizes divisible by its alignment (8 for 16-bit inputs, 4 for float32), else math."""
    half = query.dtype in (torch.float16, torch.bfloat16)
    sizes = {query.shape[-1], key.shape[-1], value.shape[-1]}
    if half and attn_mask is None and len(sizes) == 1 and max(sizes) <= 256:
        return "sdpa-flash"
    if all(size % (8 if half else 4) == 0 for size in sizes):
        return "sdpa-efficient"
    return "sdpa-math"


def kernel_region(attention: str, device: torch.device | str, simulated_step: bool = False):
    """The context a step runs in: on CUDA the SDPA backend `attention` names (sdpa_kernel, no fallback); elsewhere
    that too, and CudaKernels (dropout as CUDA's; on meta and fake tensors SDPA routed to that kernel; LayerNorm as
    CUDA's where the step is simulated)."""
    stack = contextlib.ExitStack()
    if attention in SDPA_BACKENDS:
        stack.enter_context(sdpa_kernel(SDPA_BACKENDS[attention]))
    if torch.device(device).type != "cuda":
        stack.enter_context(CudaKernels(attention, simulated_step))
    return stack
