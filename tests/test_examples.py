"""The examples (examples/from_scratch.py with its own AdamW, examples/nanogpt.py), measured on meta at random small
sizes: equal to torch's MemTracker on the same step and to the same step on CPU, to the byte."""
import random
from pathlib import Path

import pytest

from model import StepSpec
from model.config import ModelConfig
from model.step import build
from profiler import measure
from tests.memtracker import HOST_BYTES_PER_LAYER, byte_figures, memtracker_peak

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FROM_SCRATCH, NANOGPT = f"{EXAMPLES / 'from_scratch.py'}:build", f"{EXAMPLES / 'nanogpt.py'}:build"
OWN_ADAMW = f"{EXAMPLES / 'from_scratch.py'}:AdamW"


def random_sizes(seed: int, arch: str) -> StepSpec:
    """Tiny sizes: head sizes a multiple of 8 (the fused attention kernels take them unpadded, RoPE pairs them)."""
    rng = random.Random(seed)
    heads = rng.randint(1, 4)
    config = ModelConfig(vocab_size=rng.randint(32, 300), context_length=rng.randint(4, 24),
                         num_layers=rng.randint(1, 3), d_model=heads * rng.choice((8, 16)), num_heads=heads,
                         d_ff=rng.randint(8, 80), arch=arch, name=f"random-{seed}")
    return StepSpec(config, batch_size=rng.randint(1, 3))


SEEDS = (1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("optimizer_class", ["", OWN_ADAMW])
def test_from_scratch_on_meta_equals_memtracker_and_cpu(seed, optimizer_class):
    spec = random_sizes(seed, "llama").replace(source=FROM_SCRATCH, optimizer_class=optimizer_class)
    measured = measure(spec, "meta", count_flops=False).measured
    assert measured["peak_bytes"] == memtracker_peak(spec)
    assert byte_figures(measured) == byte_figures(measure(spec, "cpu", count_flops=False).measured)
    # both moments of every parameter, whichever AdamW keeps them (the own one's step count is a Python int)
    forward = measured["phases"]["forward"]["categories_at_peak"]
    assert forward["optimizer_state"] == 2 * forward["parameters"]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_own_adamw_keeps_a_new_moment_beside_the_old_one(seed):
    """`v = beta2 * v + (1 - beta2) * grad ** 2` allocates the new moment while the old one and two temporaries of
    its size (beta2 * v, (1 - beta2) * grad ** 2) are alive: the optimizer step's peak is there, at the largest
    parameter, where torch's AdamW updates both moments in place."""
    spec = random_sizes(seed, "llama").replace(source=FROM_SCRATCH, optimizer_class=OWN_ADAMW)
    at_peak = measure(spec, "meta", count_flops=False).measured["phases"]["optimizer"]["categories_at_peak"]
    model, _ = build(spec, "meta")
    largest = max(p.numel() * p.element_size() for p in model.parameters())
    assert at_peak["optimizer_state"] == 2 * at_peak["parameters"] + largest
    assert at_peak["optimizer_temporaries"] == 2 * largest


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attention, dropout", [("sdpa-efficient", 0.1), ("sdpa-flash", 0.1), ("sdpa-math", 0.0),
                                                ("explicit", 0.0)])
def test_nanogpt_on_meta_equals_memtracker(seed, attention, dropout):
    """To the byte, but the RNG state CUDA keeps on the host (from each layer's forward to its backward: alive at
    a peak in forward or backward, which at these sizes is where backward starts); 'explicit' runs the kernel CUDA
    would pick for a model that calls SDPA (efficient, in fp32)."""
    dtype = "bfloat16" if attention == "sdpa-flash" else "float32"
    spec = random_sizes(seed, "gpt2").replace(source=NANOGPT, attention=attention, dropout=dropout, dtype=dtype)
    measured = measure(spec, "meta", count_flops=False).measured
    kernel = "sdpa-efficient" if attention == "explicit" else attention
    host = spec.model.num_layers * HOST_BYTES_PER_LAYER[kernel] if measured["peak_phase"] != "optimizer" else 0
    assert measured["peak_bytes"] == memtracker_peak(spec) - host


@pytest.mark.parametrize("seed", SEEDS)
def test_nanogpt_on_meta_equals_cpu(seed):
    """With the math kernel, the one that runs on both (its dropout is CUDA's alone: none here)."""
    spec = random_sizes(seed, "gpt2").replace(source=NANOGPT, attention="sdpa-math", dropout=0.0)
    on_meta = measure(spec, "meta", count_flops=False).measured
    assert byte_figures(on_meta) == byte_figures(measure(spec, "cpu", count_flops=False).measured)


def test_nanogpt_ties_its_head_and_keeps_dropout_masks_as_bytes():
    spec = random_sizes(2, "gpt2").replace(source=NANOGPT, attention="sdpa-efficient", dropout=0.1)
    result = measure(spec, "meta", count_flops=False)
    c = spec.model
    per_block = 4 * c.d_model ** 2 + 2 * c.d_model * c.d_ff + 9 * c.d_model + c.d_ff  # biases and two LayerNorms
    assert result.measured["params"] == (c.vocab_size + c.context_length + 2) * c.d_model + c.num_layers * per_block
    layer = result.saved_activations_per_layer["0"]
    B, T = spec.batch_size, c.context_length
    assert layer["mlp.dropout"] == layer["attn.resid_dropout"] == B * T * c.d_model  # a bool mask


def test_the_implementations_table_sets_each_beside_ours_and_grades_the_sets_that_describe_it():
    from profiler.reports.implementations import displayed, implementations_table

    def row(source="builtin", optimizer_class="", peak=100, max_batch=3, predicted=None, dtype="float32"):
        spec = StepSpec(ModelConfig(vocab_size=64, context_length=8, num_layers=1, d_model=16, num_heads=2,
                                    arch="llama", source=source, name="small"), batch_size=1)
        spec = spec.replace(optimizer_class=optimizer_class, dtype=dtype)
        return {"outcome": "ok", "config": spec.flat(), "batch_size": 1, "optimizer": "foreach",
                "measured": {"peak_bytes": peak, "params": 10, "saved_activations_bytes": peak // 2},
                "max_batch": {"measured": max_batch}, "predicted": predicted or {}}

    rows = [row(predicted={"exact": {"peak_bytes": 100}}), row("hf:llama", peak=150),
            row(FROM_SCRATCH, OWN_ADAMW, peak=120, predicted={"textbook": {"peak_bytes": 90}}),
            row("hf:llama", peak=50, dtype="bfloat16"),
            {"outcome": "error", "error": "boom"}]
    table = implementations_table(rows)
    assert list(table["implementation"]) == ["ours (llama block)", "Hugging Face LlamaForCausalLM",
                                             f"{FROM_SCRATCH} + its AdamW", "Hugging Face LlamaForCausalLM"]
    assert list(table["peak vs ours"].fillna(-1)) == [0.0, 0.5, 0.2, -1]  # no built-in point in bf16
    assert list(table["exact"].fillna(-1)) == [0.0, -1, -1, -1] and table["textbook"][2] == -0.25
    shown = displayed(table)
    assert list(shown["peak vs ours"]) == ["+0.00%", "+50.00%", "+20.00%", "—"]
    assert list(shown["textbook"]) == ["—", "—", "-25.0%", "—"]
