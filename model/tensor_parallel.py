"""Tensor (and sequence) parallelism of the built-in model on the "tp" dimension of a 2-D mesh ("dp", "tp"), as
torchtitan's parallelize_llama does it (torchtitan/models/llama3/infra/parallelize.py, apply_tp), with
torch.distributed.tensor.parallel's styles:

  embedding            RowwiseParallel: the vocabulary rows split, the lookup's partial sums reduced to the
                       sequence-split (sequence parallel) or whole (replicated) activation
  position_embedding   (gpt2) the same on its positions; its output [T, D] is split on dimension 0
  norm1, norm2,        SequenceParallel with sequence parallelism (whole weights, sequence-split activations),
  final_norm           else left whole on every rank of "tp"
  attn, ffn            with sequence parallelism, PrepareModuleInput: the sequence-split input all-gathered
  q_proj, k_proj,      ColwiseParallel: output features split, so each rank holds H/t query and G/t key/value
  v_proj, w1, w3       heads (model.transformer reads the heads from the width) and d_ff/t hidden features
  out_proj, w2         RowwiseParallel: the partial sums reduce-scattered on the sequence (sequence parallel) or
                       all-reduced
  lm_head              ColwiseParallel with the logits left split on the vocabulary (a DTensor): loss parallel
                       (loss_region) computes the cross-entropy on them

torchtitan always splits the norms (its TP is sequence parallel); setup.sequence_parallel False is Megatron's TP
(Shoeybi et al.), norms and dropouts on whole activations. GPT-2's LM head shares the embedding's weight: both are
split on the vocabulary rows (Shard(0)), so the two are tied again after the plan. Dropouts and the residual adds
run on whatever the split layers return (local tensors).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from model.setup import Setup


def parallelize(model: torch.nn.Module, setup: Setup, tp_mesh) -> None:
    """torchtitan's tensor-parallel plan (module docstring) on the built-in model, over the 1-D mesh `tp_mesh`."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel,
                                                   SequenceParallel, parallelize_module)

    sequence = setup.sequence_parallel
    between = Shard(1) if sequence else Replicate()  # the activations between the split layers
    plan = {"embedding": RowwiseParallel(input_layouts=Replicate(), output_layouts=between),
            "lm_head": ColwiseParallel(input_layouts=between, output_layouts=Shard(-1), use_local_output=False)}
    if model.position_embedding is not None:
        plan["position_embedding"] = RowwiseParallel(input_layouts=Replicate(),
                                                     output_layouts=Shard(0) if sequence else Replicate())
    if sequence:
        plan["final_norm"] = SequenceParallel()
    tied = model.lm_head.weight is model.embedding.weight
    parallelize_module(model, tp_mesh, plan)
    if tied:
        model.lm_head.weight = model.embedding.weight
    for block in model.blocks:
        layer_plan = {"attn.q_proj": ColwiseParallel(), "attn.k_proj": ColwiseParallel(),
                      "attn.v_proj": ColwiseParallel(), "attn.out_proj": RowwiseParallel(output_layouts=between),
                      "ffn.w1": ColwiseParallel(), "ffn.w2": RowwiseParallel(output_layouts=between)}
        if block.ffn.w3 is not None:
            layer_plan["ffn.w3"] = ColwiseParallel()
        if sequence:
            layer_plan.update({
                "norm1": SequenceParallel(), "norm2": SequenceParallel(),
                # attn(x, future, cos, sin): x gathered whole; the mask and RoPE's tables are plain tensors
                "attn": PrepareModuleInput(input_layouts=(Shard(1), None, None, None),
                                           desired_input_layouts=(Replicate(), None, None, None)),
                "ffn": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),))})
        parallelize_module(block, tp_mesh, layer_plan)


def loss_region(setup: Setup):
    """Where forward and backward run: torch's loss_parallel() with tensor parallelism (the cross-entropy of the
    vocabulary-split logits, as torchtitan's train context does), else nothing."""
    if setup.tensor_parallel == 1:
        return nullcontext()
    from torch.distributed.tensor.parallel import loss_parallel

    return loss_parallel()
