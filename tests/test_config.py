import pytest

from analytic.units import format_bytes, parse_bytes, relative_error
from model import SETUP_OPTIONS, ModelConfig, Setup, StepSpec, preset


def test_d_ff_defaults_to_four_d_model():
    assert ModelConfig(10, 8, 1, 16, 4).d_ff == 64


@pytest.mark.parametrize("field, value, message", [
    ("vocab_size", 0, "vocab_size must be positive, got 0"),
    ("num_layers", -2, "num_layers must be positive, got -2"),
    ("d_model", 10, "d_model=10 is not divisible by num_heads=4"),
    ("d_ff", 0, "d_ff must be positive, got 0"),
    ("positional", "alibi", "positional must be one of"),
    ("attention", "linear", "attention must be one of"),
    ("dtype", "float8", "dtype must be one of"),
    ("context_length", 2.5, "context_length must be an integer, got 2.5"),
])
def test_bad_config_names_field_and_value(field, value, message):
    sizes = dict(vocab_size=10, context_length=8, num_layers=1, d_model=16, num_heads=4)
    sizes[field] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StepSpec.of(**sizes)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'gpt5'"):
        preset("gpt5")


@pytest.mark.parametrize("text, expected", [("80GB", 80 * 10**9), ("80GiB", 80 * 2**30), ("512 MiB", 2**29),
                                            ("1.5GB", 1_500_000_000), ("100B", 100)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["80", "80 gigs", "GB", "-1GB", "0GB", "80Gb", ""])
def test_parse_bytes_rejects_bad_budgets(text):
    with pytest.raises(ValueError, match="memory budget"):
        parse_bytes(text)


def test_units_are_not_mixed():
    assert format_bytes(80 * 10**9, "GB") == "80.00 GB"
    assert format_bytes(80 * 10**9, "GiB") == "74.51 GiB"
    assert relative_error(110, 100) == pytest.approx(0.1)


@pytest.mark.parametrize("changes, message", [
    ({"arch": "gpt3"}, "arch must be one of"),
    ({"arch": "gpt2", "positional": "rope"}, "arch 'gpt2' has positional learned"),
    ({"arch": "llama", "positional": "learned"}, "arch 'llama' has positional rope"),
    ({"arch": "llama", "dropout": 0.1}, "arch 'llama' has no dropout"),
    ({"arch": "gpt2", "dropout": 1.0}, r"dropout must be a probability in \[0, 1\)"),
    ({"arch": "gpt2", "attention": "sdpa-math"}, "dropout with attention='sdpa-math' is not simulated"),
    ({"arch": "llama", "kv_heads": 3}, "kv_heads=3 does not divide num_heads=4"),
    ({"kv_heads": 2}, "grouped-query attention .* is arch 'llama' only"),
])
def test_arch_options_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        StepSpec.of(vocab_size=100, context_length=16, num_layers=2, d_model=32, num_heads=4, **changes)


def test_arch_defaults_follow_the_arch():
    """d_ff, positional, dropout and kv_heads left at their default take the new arch's on replace (Llama's d_ff
    is 256·⌈8D/3 / 256⌉: 11008 at D = 4096, 5632 at D = 2048); values set explicitly stay."""
    config = ModelConfig(vocab_size=100, context_length=16, num_layers=2, d_model=4096, num_heads=32)
    llama = config.replace(arch="llama")
    assert (llama.d_ff, llama.positional, llama.dropout, llama.kv_heads) == (11008, "rope", 0.0, 32)
    gpt2 = llama.replace(arch="gpt2")
    assert (gpt2.d_ff, gpt2.positional, gpt2.dropout) == (4 * 4096, "learned", 0.1)
    assert config.replace(d_ff=100, arch="llama").d_ff == 100
    assert ModelConfig(vocab_size=10, context_length=4, num_layers=1, d_model=2048, num_heads=32,
                       arch="llama").d_ff == 5632
    assert StepSpec(gpt2.replace(dropout=0.0)).options_text() == "float32, arch gpt2, dropout 0.0"


def test_setup_is_its_table_of_options():
    """Setup's fields are SETUP_OPTIONS in order, each defaulting to the table's default; a value outside an
    option's choices, a non-positive integer or a non-bool is refused with the option's name."""
    assert [field for field in Setup().to_dict()] == [option.name for option in SETUP_OPTIONS]
    assert Setup().to_dict() == {option.name: option.default for option in SETUP_OPTIONS}
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Setup(optimizer="adam")
    with pytest.raises(ValueError, match="micro_batches must be positive, got 0"):
        Setup(micro_batches=0)
    with pytest.raises(ValueError, match="reshard_after_forward must be true or false, got 1"):
        Setup(shard="fsdp2", reshard_after_forward=1)


def test_a_spec_is_written_and_read_as_a_result_row():
    """flat() is the "config" of a result row: the model's fields, the setup's but the optimizer, the name last;
    from_row reads a row back, the optimizer and batch beside it."""
    spec = StepSpec(preset("hf-gpt2"), batch_size=4).replace(checkpointing="full", micro_batches=2,
                                                             optimizer="forloop")
    assert list(spec.flat()) == ["vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff", "arch",
                                 "positional", "dropout", "kv_heads", "source", "attention", "dtype", "checkpointing",
                                 "micro_batches", "zero_grad", "autocast", "shard", "world_size",
                                 "reshard_after_forward", "tensor_parallel", "sequence_parallel", "optimizer_class",
                                 "name"]
    row = {"config": spec.flat(), "batch_size": 4, "optimizer": "forloop"}
    assert StepSpec.from_row(row) == spec and StepSpec.from_row(row).model.name == "hf-gpt2"
    assert StepSpec.from_row({"config": {"vocab_size": 8, "context_length": 4, "num_layers": 1, "d_model": 4,
                                         "num_heads": 1}}) == StepSpec(ModelConfig(8, 4, 1, 4, 1))
    with pytest.raises(ValueError, match="unknown field"):
        spec.replace(precision="fp16")
    assert spec.micro_batch_size == 2
    assert spec.setup_text() == "batch 4 (2 micro-batches of 2), float32, arch gpt2, checkpointing full"


def test_the_cli_and_the_grid_read_the_table_of_options():
    """Every setup option is a flag with the table's choices, and parsing them gives that setup; the grid's option
    axes are the table's named options (the optimizer apart: a grid's `optimizers`), its number axes the integer
    ones."""
    import argparse

    from profiler.commands.options import add_config_arguments, spec_from_args
    from profiler.experiments.grid import AXES, OPTION_AXES

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flags = {action.dest: action for action in parser._actions}
    for option in SETUP_OPTIONS:
        assert flags[option.name].choices == option.choices
    args = parser.parse_args(["--preset", "tiny", "--optimizer", "forloop", "--micro-batches", "2",
                              "--batch-size", "4", "--checkpointing", "full"])
    assert spec_from_args(args) == StepSpec(preset("tiny"), Setup(optimizer="forloop", micro_batches=2,
                                                                  checkpointing="full"), 4)
    named = {option.name: option.choices for option in SETUP_OPTIONS if option.choices and option.name != "optimizer"}
    assert OPTION_AXES == {"arch": ("reference", "gpt2", "llama"), **named}
    assert AXES[-3:] == ("micro_batches", "world_size", "tensor_parallel")
