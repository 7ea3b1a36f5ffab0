"""The one training step that every measurement runs, and the AdamW factory."""
from __future__ import annotations

from typing import Callable

import torch

from model.autocast import autocast_region
from model import implementations
from model.config import BUILTIN, ModelConfig
from model.cuda_kernels import kernel_region, simulated
from model.setup import Setup
from model.spec import StepSpec
from model.tensor_parallel import loss_region
from model.transformer import TransformerLM
from model.vocabulary import OPTIMIZERS

ADAMW_FLAGS = {
    "forloop": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}


def make_optimizer(model: torch.nn.Module, optimizer: str = "foreach", lr: float = 1e-3,
                   weight_decay: float = 0.1, optimizer_class: str = "") -> torch.optim.Optimizer:
    """torch.optim.AdamW over all parameters, its implementation (`optimizer`, one of OPTIMIZERS) chosen
    explicitly, never torch's default; or the user's `optimizer_class` (model.implementations) with the same lr and
    weight decay."""
    if optimizer_class:
        cls = implementations.optimizer_class(optimizer_class)
        try:
            return cls(model.parameters(), lr=lr, weight_decay=weight_decay)
        except Exception as error:
            raise ValueError(f"optimizer class {optimizer_class}: {cls.__name__}(params, lr={lr}, "
                             f"weight_decay={weight_decay}) raised {type(error).__name__}: {error}") from None
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, **ADAMW_FLAGS[optimizer])


def build(spec: StepSpec, device: str | torch.device = "cpu",
          seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The spec's model on `device` (built there directly: no host copy of a GPT-2 XL) and its optimizer: the
    built-in TransformerLM, or the model of spec.model.source (model.implementations.UserLM)."""
    torch.manual_seed(seed)
    with torch.device(device):
        if spec.model.source == BUILTIN:
            model = TransformerLM(spec.model, spec.setup)
        else:
            model = implementations.build_user_model(spec.model, spec.setup)
    return model, make_optimizer(model, spec.setup.optimizer, optimizer_class=spec.setup.optimizer_class)


def make_batch(config: ModelConfig, batch_size: int, device: str | torch.device = "cpu",
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids and next-token targets, each [batch_size, context_length] int64."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shape = (batch_size, config.context_length)
    generator = None if torch.device(device).type == "meta" else torch.Generator(device).manual_seed(seed)
    tokens = torch.randint(config.vocab_size, shape, device=device, generator=generator)
    targets = torch.randint(config.vocab_size, shape, device=device, generator=generator)
    return tokens, targets


def train_step(model: TransformerLM, adamw: torch.optim.Optimizer, tokens: torch.Tensor,
               targets: torch.Tensor, setup: Setup, mark: Callable[[str], None] = lambda phase: None,
               autocast_policy: str = "cuda") -> torch.Tensor:
    """Forward with the loss, backward, AdamW step, zero_grad; returns the detached loss of the last micro-batch.

    With setup.micro_batches = k, forward and backward run on k equal slices of the batch (views, no
    copy), each loss divided by k (k = 1 included, as nanoGPT's loop does), gradients accumulating (autograd adds
    each micro-batch's gradient into .grad in place once it exists), then one AdamW step. zero_grad frees the
    gradients (setup.zero_grad 'none': set_to_none=True) or zeroes them in place ('zeros').
    The step runs in model.cuda_kernels.kernel_region: the setup's SDPA kernel, dropout as CUDA runs it, and
    LayerNorm too where the tokens have no data (a simulated step); with
    tensor parallelism in model.tensor_parallel.loss_region too (torch's loss_parallel over forward and backward).
    With setup.autocast, forward and loss run under torch.autocast, emulated with `autocast_policy`'s rules on
    meta (model.autocast), backward outside it.
    `mark(phase)` is called as each phase begins ("forward" and "backward" once per micro-batch, "optimizer")
    and with "end" after the last one: the hook that every measurement (meta tracker, CUDA allocator
    statistics) uses to cut phases. The logits are not kept: cross-entropy saves its own log-softmax, so they
    die inside the forward.
    """
    micro_batches = setup.micro_batches
    StepSpec(model.config, setup, len(tokens)).micro_batch_size  # a one-line error when the batch does not divide
    with kernel_region(setup.attention, tokens.device, simulated(tokens)), loss_region(setup):
        for micro_tokens, micro_targets in zip(tokens.chunk(micro_batches), targets.chunk(micro_batches)):
            mark("forward")
            with autocast_region(setup, tokens.device, autocast_policy):
                loss = model.loss(micro_tokens, micro_targets) / micro_batches  # as nanoGPT does, 1 included
            mark("backward")
            loss.backward()
        mark("optimizer")
        adamw.step()
        adamw.zero_grad(set_to_none=setup.zero_grad == "none")
        mark("end")
    return loss.detach()
