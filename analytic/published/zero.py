"""ZeRO (Rajbhandari, Rasley, Ruwase, He 2019, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", arXiv 1910.02054), section 3: model states and residual activations of mixed-precision Adam.

Section 3.1, model states of Ψ parameters trained with mixed-precision Adam:
    fp16 parameters 2Ψ + fp16 gradients 2Ψ + optimizer states KΨ, K = 12 (an fp32 copy of the parameters, the
    momentum and the variance, 4Ψ each)                                       = 16Ψ bytes
    ("a 1.5B parameter GPT-2 ... requires at least 24 GB", Figure 1's baseline 7.5B × 16 = 120 GB)
Section 5 / Figure 1, per device with data parallel degree Nd:
    P_os       4Ψ + KΨ/Nd        P_os+g      2Ψ + (2 + K)Ψ/Nd        P_os+g+p      (4 + K)Ψ/Nd
    (Figure 1: Ψ = 7.5B, Nd = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB)
Section 3.2, residual states: "the total size of activations ... is roughly 12 × hidden_dim × batch × seq_length ×
transformer_layers" 16-bit values ("1.5B parameter GPT-2 model trained with sequence length of 1K and batch size
of 32 requires about 60 GB"); activation checkpointing is said to cut that to about the square root, with no
formula, so the set predicts activations only without recomputation.

Encoded on one device (Nd = 1, where every stage gives 16Ψ) with Ψ the model's own parameter count; model states
itemised as section 3.1 writes them. Under FSDP2 (shard 'fsdp2', which shards parameters, gradients and optimizer
state: stage 3, P_os+g+p) over Nd = world_size ranks, each item divided by Nd; under DDP (shard 'ddp') the
baseline 16Ψ on every rank. Setup described: mixed precision
(our bf16 autocast over fp32 parameters and AdamW state, the same bytes as fp16), the GPT-2 family, one batch;
activations without recomputation only.
"""
from __future__ import annotations

from analytic.params import parameter_count
from analytic.sharding import shard_group
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "zero"
DESCRIPTION = ("ZeRO (arXiv 1910.02054): mixed-precision Adam 2Ψ + 2Ψ + 12Ψ = 16Ψ on one device; activations "
               "12·h·b·s·L 16-bit values")
SETUP = {"arch": ("reference", "gpt2"), "autocast": "bfloat16", "micro_batches": 1,
         "shard": ("none", "fsdp2", "ddp")}
K = 12  # optimizer-state bytes per parameter: fp32 parameters, momentum, variance
STATE_BYTES = {"parameters": 2, "gradients": 2, "optimizer_state": K}
ACTIVATION_VALUES = 12  # per hidden unit, token and layer
BYTES_PER_VALUE = 2  # 16-bit activations


def model_state_bytes(psi: float, stage: str = "none", devices: int = 1) -> float:
    """Bytes per device of the model states: the baseline 16Ψ, or ZeRO's stage "os", "os+g", "os+g+p"."""
    per_device = {"none": (2 + 2 + K) * psi, "os": 4 * psi + K * psi / devices,
                  "os+g": 2 * psi + (2 + K) * psi / devices, "os+g+p": (4 + K) * psi / devices}
    if stage not in per_device:
        raise ValueError(f"stage must be one of {', '.join(per_device)}, got {stage!r}")
    return per_device[stage]


def activation_bytes(config: ModelConfig, batch_size: int) -> int:
    """12 · hidden · batch · sequence · layers values of 2 bytes."""
    return (ACTIVATION_VALUES * config.d_model * batch_size * config.context_length * config.num_layers
            * BYTES_PER_VALUE)


def predict(spec: StepSpec) -> dict:
    """Model states itemised (one device, or one rank of stage 3 under FSDP2) and, without recomputation, the saved
    activations (of the rank's batch)."""
    config, batch_size = spec.model, spec.batch_size
    psi = parameter_count(config)
    devices = shard_group(spec.setup)
    states = {category: share * psi / devices for category, share in STATE_BYTES.items()}
    figures = {"model_states": states,
               "model_states_bytes": model_state_bytes(psi, "os+g+p" if devices > 1 else "none", devices)}
    if spec.setup.checkpointing == "none":
        figures["saved_activations_bytes"] = activation_bytes(config, batch_size)
    return figures
