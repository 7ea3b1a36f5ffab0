"""DeepSpeed's memory estimators for ZeRO-2 and ZeRO-3 without offload, on one GPU.

Source: deepspeedai/DeepSpeed, deepspeed/runtime/zero/stage_1_and_2.py estimate_zero2_model_states_mem_needs and
stage3.py estimate_zero3_model_states_mem_needs, as docs/code-docs/source/memory.rst (read at commit 0cca5393)
states them and prints their output:
    ZeRO-2, offload_optimizer none:  gpu_mem = 4·params + int(16·params / total_gpus)
    ZeRO-3, offload none:            gpu_mem = largest_layer_memory + int(18·params / total_gpus),
                                     largest_layer_memory = 4·largest_layer_params ("2 bytes fp16 params are
                                     gathered and 2 bytes fp16 grads are computed")
    "16b for fp32: 4b params, 4b grads, 4b momentum and 4b variance per parameter"; "18: ... +2b for fp16 params"
    (memory.rst's examples: 2851M parameters on 8 GPUs: 15.93GB per GPU for ZeRO-2, 6.09GB with a 32M largest
    layer for ZeRO-3; its "GB" are 2³⁰ bytes)
Graded: ZeRO-2 at total_gpus = 1, 20 bytes per parameter, predicting the model states only (the estimators size nothing
else), itemised as memory.rst reads it (fp16 parameters 2 with the fp32 copy counted as optimizer state; fp16 gradients
2 + fp32 gradients 4; momentum and variance 8). Setup described: mixed precision, one batch, any block. Under FSDP2
(shard 'fsdp2', ZeRO-3's sharding of parameters, gradients and optimizer state) ZeRO-3's estimate per rank with
total_gpus = world_size, as the model states' total (it does not itemise them), its largest layer the module with the
most parameters of its own, as estimate_zero3_model_states_mem_needs_all_live counts it (largest_layer_params).
"""
from __future__ import annotations

from analytic.params import parameter_count
from model.config import ModelConfig
from model.spec import StepSpec

NAME = "deepspeed"
DESCRIPTION = "DeepSpeed estimate_zero2_model_states_mem_needs, no offload, 1 GPU: 4Ψ + 16Ψ = 20 bytes per parameter"
SETUP = {"autocast": "bfloat16", "micro_batches": 1, "shard": ("none", "fsdp2")}
ZERO2_STATE_BYTES = {"parameters": 2, "gradients": 2 + 4, "optimizer_state": 4 + 4 + 4}


def zero2_gpu_bytes(total_params: float, total_gpus: int = 1) -> int:
    """estimate_zero2_model_states_mem_needs(cpu_offload=False)'s gpu_mem."""
    return int(4 * total_params + int(16 * total_params / total_gpus))


def zero3_gpu_bytes(total_params: float, largest_layer_params: float, total_gpus: int = 1) -> int:
    """estimate_zero3_model_states_mem_needs(cpu_offload=False, cpu_offload_params=False)'s gpu_mem."""
    return int(4 * largest_layer_params + int(18 * total_params / total_gpus))


def largest_layer_params(config: ModelConfig) -> int:
    """The most parameters one module holds itself: the token embedding (V·D, the LM head's too, untied or tied),
    the FFN's widest linear layer (F·D, with gpt2's bias F), or the position embedding (T·D); attention's
    projections (D·D) and the norms are smaller."""
    V, T, D, F = config.vocab_size, config.context_length, config.d_model, config.d_ff
    learned = T * D if config.positional == "learned" else 0
    return max(V * D, F * D + (F if config.arch == "gpt2" else 0), learned)


def predict(spec: StepSpec) -> dict:
    """ZeRO-2's model states on one GPU, itemised as memory.rst reads them; under FSDP2 ZeRO-3's per rank."""
    config = spec.model
    psi = parameter_count(config)
    if spec.setup.shard == "fsdp2":
        return {"model_states_bytes": zero3_gpu_bytes(psi, largest_layer_params(config), spec.setup.world_size)}
    return {"model_states": {category: share * psi for category, share in ZERO2_STATE_BYTES.items()},
            "model_states_bytes": zero2_gpu_bytes(psi)}
