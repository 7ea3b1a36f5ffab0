"""The `exact` formula set: closed forms that predict what the profiler measures for model.transformer.

Memory to the byte on meta (analytic.exact.memory, from the allocation programs derived from traces of the step,
analytic/exact/derived.json.gz, compiled by analytic.exact.programs),
FLOPs exactly under FlopCounterMode and the elementwise convention (analytic.exact.flops), the maximum batch in
a budget solved from the closed form (analytic.exact.max_batch). Everything is numpy-vectorised: pass an array
of batch sizes, or use `evaluate` over arrays of sizes.

Domain: context_length >= 2, every arch (reference, gpt2, llama), every attention option (explicit, and the SDPA
backends as CUDA runs them, which is what meta simulates; flash for 16-bit dtypes and autocast), checkpointing,
micro-batching, zero_grad option and bf16 autocast as meta emulates CUDA's; on torch before 2.11, not RoPE with a
head size of 2 (analytic.exact.versions.outside_domain). Outside it (T = 1, where weight gradients take another
path) it predicts the parameter count only. One rank of a sharded step (FSDP2, DDP): its memory by phase and
category, FSDP2's buffers included, from derived programs, and its FLOPs (analytic.exact.sharded: foreach AdamW;
rank 0).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from analytic.exact.flops import flop_figures
from analytic.exact.max_batch import max_batch_size
from analytic.exact.memory import saved_activations_by_component, saved_activations_per_layer, step_figures
from analytic.exact.sharded import evaluate_rank
from analytic.exact.source import installed_torch
from analytic.exact.versions import outside_domain
from analytic.sizes import sizes_from_arrays, sizes_of
from model.config import ModelConfig

NAME = "exact"
DESCRIPTION = ("ours: every allocation of the real step (autograd's saved tensors, transient temporaries, AdamW "
               "temporaries, phase order), exact on meta; one rank of FSDP2 or DDP too (its buffers included)")
SETUP = {"shard": ("none", "fsdp2", "ddp")}  # a sharded rank's memory within analytic.exact.sharded's domain

__all__ = ["NAME", "DESCRIPTION", "predict", "max_batch_size", "evaluate", "evaluate_arrays"]


def evaluate(config: ModelConfig, batch_size, optimizer: str = "foreach") -> dict[str, Any]:
    """All figures as numpy values (arrays when batch_size is an array)."""
    sizes = sizes_of(config, batch_size)
    figures: dict[str, Any] = {"params": sizes.params}
    if config.shard != "none":  # rank 0: its memory and FLOPs (analytic.exact.sharded)
        figures.update(evaluate_rank(config, sizes, optimizer))
    elif outside_domain(config, installed_torch()) is None:
        figures.update(step_figures(sizes, config.positional, optimizer))
        figures["warmup"] = step_figures(sizes, config.positional, optimizer, warmup=True)
        by_component = saved_activations_by_component(sizes, config.positional)
        figures["saved_activations_bytes"] = sum(by_component.values())
        figures["saved_activations_by_component"] = by_component
        figures["saved_activations_per_layer_bytes"] = saved_activations_per_layer(sizes, config.positional)
        figures.update(flop_figures(sizes))
    return figures


def evaluate_arrays(optimizer: str = "foreach", positional: str = "learned", dtype: str = "float32",
                    checkpointing: str = "none", attention: str = "explicit", arch: str = "reference",
                    dropout: float = 0.0, **sizes) -> dict[str, Any]:
    """Memory and FLOP figures of many configurations at once: vocab_size, context_length, num_layers, d_model,
    num_heads, d_ff, batch_size (and kv_heads) as numpy arrays (context_length >= 2)."""
    arrays = sizes_from_arrays(positional=positional, dtype=dtype, checkpointing=checkpointing, attention=attention,
                               arch=arch, dropout=dropout, **sizes)
    if np.any(arrays.T < 2) or np.any(arrays.D % arrays.H):
        raise ValueError("every context_length must be >= 2 and every d_model divisible by its num_heads")
    figures: dict[str, Any] = {"params": arrays.params}
    figures.update(step_figures(arrays, positional, optimizer))
    figures["saved_activations_bytes"] = sum(saved_activations_by_component(arrays, positional).values())
    figures.update(flop_figures(arrays))
    return figures


def predict(config: ModelConfig, batch_size: int, optimizer: str = "foreach") -> dict[str, Any]:
    """Figures for one configuration as plain Python numbers (analytic.figures)."""
    return _plain(evaluate(config, batch_size, optimizer))


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value
