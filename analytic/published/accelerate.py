"""Hugging Face Accelerate's `accelerate estimate-memory`, the "Training using Adam" column.

Source: huggingface/accelerate, src/accelerate/commands/estimate.py (read at commit 00e4d264),
estimate_training_usage(bytes, mixed_precision) with `bytes` the model's float32 size (parameters and buffers),
the command printing the largest of the four figures ("for a batch size of 1", no activations):
    float32             model 1x, gradients 1x, optimizer 2x, step 4x          -> 4x the float32 size
    float16 / bfloat16  model 1x ("weights stored in FP16 and FP32"), gradients 1.5x, optimizer 2x, step = optimizer
                                                                               -> 2x the float32 size
(docs/source/usage_guides/model_size_estimator.md prints, for bert-base-cased, 413.18 MB, 1.61 GB and 826.36 MB, in
units of 1024: reproduced by tests/test_published_accelerate.py.)

Encoded with the float32 size 4 bytes per parameter (our models' buffers, the causal mask and position indices, are
not part of what a user counts as the model): peak_bytes is the printed figure, 16 bytes per parameter in float32
and 8 under mixed precision; in float32 also the model states as its dictionary itemises them (4 + 4 + 8, the step's
4x being their sum). Setup described: AdamW in float32, or mixed precision (our bf16 autocast), batch 1 (graded at
any batch: it has no batch term), any block, attention and checkpointing.
"""
from __future__ import annotations

from analytic.params import parameter_count
from model.spec import StepSpec

NAME = "accelerate"
DESCRIPTION = ("accelerate estimate-memory, Training using Adam: 4x the fp32 model size (16 B/param), 2x under mixed "
               "precision")
SETUP = [{"dtype": "float32", "autocast": "none", "micro_batches": 1},
         {"dtype": "float32", "autocast": "bfloat16", "micro_batches": 1}]
FLOAT32_BYTES = 4


def estimate_training_usage(size_bytes: int, mixed_precision: str) -> dict[str, int]:
    """estimate_training_usage's dictionary (model, optimizer, gradients, step) for float32 or 16-bit mixed
    precision; -1 for a precision it does not size."""
    sizes = {"model": -1, "optimizer": -1, "gradients": -1, "step": -1}
    fp32_size, fp16_size = size_bytes, size_bytes // 2
    if mixed_precision == "float32":
        sizes.update(model=fp32_size, gradients=fp32_size, optimizer=2 * fp32_size, step=4 * fp32_size)
    elif mixed_precision in ("float16", "bfloat16"):
        sizes.update(model=fp32_size, gradients=fp32_size + fp16_size, optimizer=2 * fp32_size)
        sizes["step"] = sizes["optimizer"]
    return sizes


def convert_bytes(size: float) -> str:
    """accelerate.utils.convert_bytes: units of 1024, rounded to two decimals."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024.0:
            return f"{round(size, 2)} {unit}"
        size /= 1024.0
    return f"{round(size, 2)} PB"


def predict(spec: StepSpec) -> dict:
    """The printed "Training using Adam" as the peak; in float32 the model states as itemised."""
    config = spec.model
    psi = parameter_count(config)
    mixed = spec.setup.autocast != "none"
    usage = estimate_training_usage(FLOAT32_BYTES * psi, "bfloat16" if mixed else "float32")
    figures: dict = {"peak_bytes": max(usage.values())}
    if not mixed:
        states = {"parameters": usage["model"], "gradients": usage["gradients"], "optimizer_state": usage["optimizer"]}
        figures.update(model_states=states, model_states_bytes=sum(states.values()))
    return figures
