"""The published formula sets: their algebra as cited, and graded only on the setups they claim."""
import pytest

from analytic.formula_sets import describes
from analytic.params import parameter_count
from analytic.published import megatron
from model import PRESETS
from model.spec import StepSpec


def test_megatron_parameter_count():
    """SwiGLU, RMSNorm, untied: Llama 2 7B's published count; GPT-2 XL as published loses its biases (3·D + K +
    F + D per layer) and its position embedding (T·D), which the formula does not count."""
    assert megatron.parameters(PRESETS["llama2-7b"]) == 6_738_415_616 == parameter_count(PRESETS["llama2-7b"])
    xl = PRESETS["hf-gpt2-xl"]
    D, F, L, T = xl.d_model, xl.d_ff, xl.num_layers, xl.context_length
    assert parameter_count(xl) - megatron.parameters(xl) == L * (4 * D + F + D) + T * D


def test_megatron_memory_algebra():
    """18 bytes per parameter; 1.05·(34·s·b·h per layer + 8·s·b + s·b·h + 2·s·b·(V + h)) of activations."""
    spec = StepSpec(PRESETS["hf-gpt2-xl"]).replace(autocast="bfloat16", attention="sdpa-flash")
    config = spec.model
    s, h, V, L = config.context_length, config.d_model, config.vocab_size, config.num_layers
    one, two = (megatron.predict(spec.replace(batch_size=b))["peak_bytes"] for b in (1, 2))
    assert one - (two - one) == pytest.approx(18 * megatron.parameters(config))
    assert two - one == pytest.approx(1.05 * (34 * s * h * L + 8 * s + s * h + 2 * s * (V + h)))


@pytest.mark.parametrize("t", [2, 4])
def test_megatron_memory_algebra_at_t(t):
    """One GPU of t: 18 bytes per parameter over t; 1.05·(s·b·h·(10 + 24/t) per layer + 8·s·b + s·b·h + 2·s·b·(V/t
    + h)) without sequence parallelism, (s·b·h·(18 + 4·F/h) per layer + 8·s·b + s·b·h + 4·s·b·h·(1 + V/h))/t
    with it and selective recomputation (a fused kernel); with full recomputation the path without it."""
    spec = StepSpec(PRESETS["hf-gpt2-xl"]).replace(autocast="bfloat16", attention="sdpa-flash", shard="fsdp2",
                                                   world_size=t, tensor_parallel=t, num_heads=32, d_model=2048)
    config = spec.model
    s, h, V, L, F = config.context_length, config.d_model, config.vocab_size, config.num_layers, config.d_ff
    for sequence_parallel, checkpointing, per_batch in (
            (False, "none", 1.05 * ((10 + 24 / t) * s * h * L + 8 * s + s * h + 2 * s * (V / t + h))),
            (True, "none", ((18 + 4 * F / h) * s * h * L + 8 * s + s * h + 4 * s * h * (1 + V / h)) / t),
            (True, "full", 1.05 * ((10 + 24 / t) * s * h * L + 8 * s + s * h + 2 * s * (V / t + h)))):
        at = spec.replace(sequence_parallel=sequence_parallel, checkpointing=checkpointing)
        one, two = (megatron.predict(at.replace(batch_size=b))["peak_bytes"] for b in (1, 2))
        assert one - (two - one) == pytest.approx(18 * megatron.parameters(config) / t)
        assert two - one == pytest.approx(per_batch)


def test_megatron_is_graded_on_its_setup_only():
    gpt2 = StepSpec(PRESETS["hf-gpt2-xl"])
    assert not describes(megatron, gpt2)  # fp32, explicit attention
    assert describes(megatron, gpt2.replace(autocast="bfloat16", attention="sdpa-flash", checkpointing="full"))
    assert not describes(megatron, StepSpec(PRESETS["gpt2-xl"]).replace(autocast="bfloat16", attention="sdpa-flash"))
    amp = gpt2.replace(autocast="bfloat16", attention="sdpa-flash", shard="fsdp2", num_heads=32, d_model=2048)
    assert describes(megatron, amp.replace(world_size=4, tensor_parallel=4, sequence_parallel=True))
    assert not describes(megatron, amp.replace(world_size=8, tensor_parallel=4))  # two data-parallel ranks
    assert not describes(megatron, amp.replace(world_size=8))


def test_a_users_model_is_described_by_the_sets_of_any_transformer_lm_and_of_its_declared_block():
    """Sets whose arch allows 'reference' describe "a Transformer LM of these sizes": any source; a set of one block
    describes a user's model that declares that block; the exact set, derived from the built-in model's traces with
    torch's AdamW, describes neither a user's model nor a user's optimizer."""
    from analytic import exact, textbook
    from analytic.published import nanogpt

    hf_gpt2 = StepSpec(PRESETS["hf-gpt2"].replace(source="hf:gpt2"))
    own = StepSpec(PRESETS["gpt2-small"].replace(source="examples/x.py:Model"))
    assert describes(textbook, hf_gpt2) and not describes(textbook, StepSpec(PRESETS["hf-gpt2"]))
    assert describes(nanogpt, hf_gpt2) and not describes(nanogpt, own)
    assert describes(megatron, hf_gpt2.replace(autocast="bfloat16", attention="sdpa-flash", checkpointing="full"))
    assert not describes(exact, hf_gpt2) and not describes(exact, own)
    assert describes(exact, StepSpec(PRESETS["hf-gpt2"]))
    assert not describes(exact, StepSpec(PRESETS["hf-gpt2"]).replace(optimizer_class="my.py:AdamW"))


def test_setup_text_says_what_describes_reads():
    """The 'graded on' words: a field that allows each of its choices is left out (the exact set's every shard and
    both sequence_parallel values), tensor_parallel ANY is said (a set that does not name it describes t = 1 only),
    no shard is one device, and a set that allows everything describes every setup."""
    from analytic import exact, textbook
    from analytic.formula_sets import setup_text
    from analytic.published import palm

    assert setup_text(exact) == "the built-in model, torch's AdamW, any tensor parallel"
    assert setup_text(textbook).endswith(", one device") and "arch reference" in setup_text(textbook)
    assert setup_text(palm) == "checkpointing none, one device"  # every arch: the field is left out
    config = StepSpec(PRESETS["gpt2-xl"])
    assert describes(palm, config.replace(arch="llama", positional="rope"))
    assert not describes(palm, config.replace(shard="fsdp2", world_size=2))
