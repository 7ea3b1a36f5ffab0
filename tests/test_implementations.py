"""A user's own model and optimizer (--model FILE.py:NAME, --optimizer-class) and Hugging Face models, measured as
the built-in model is: on meta equal to CPU and to torch's MemTracker, bad input one line."""
import sys
import textwrap

import pytest
import torch

from model import StepSpec, preset
from profiler import measure
from tests.memtracker import HOST_BYTES_PER_LAYER, byte_figures, memtracker_peak
from tests.test_exact_own_model import ANSWER

MODEL = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.drop(self.down(F.gelu(self.up(x))))


class LM(nn.Module):
    def __init__(self, vocab_size, context_length, num_layers, d_model, num_heads, d_ff, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(Block(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def factory(dropout=0.0, **sizes):
    return LM(dropout=dropout, **sizes)


def not_a_module(**sizes):
    return 3


def raises(**sizes):
    raise RuntimeError("out of ideas")


class WrongShape(LM):
    def forward(self, tokens):
        return super().forward(tokens)[:, :-1]


class SignSGD(torch.optim.Optimizer):
    """An optimizer of one state tensor per parameter (a momentum), updated in place."""

    def __init__(self, params, lr=1e-3, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum"] = torch.zeros_like(p)
                state["momentum"].mul_(0.9).add_(p.grad)
                p.add_(state["momentum"].sign(), alpha=-group["lr"])


class NotAnOptimizer:
    pass
'''


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "model.py"  # named as ours would be: it must not shadow model/
    path.write_text(textwrap.dedent(MODEL))
    return path


def spec_of(source, **changes):
    return StepSpec(preset("tiny"), batch_size=2).replace(source=source, **changes)


@pytest.mark.parametrize("optimizer_class", ["", "SignSGD"])
def test_a_users_model_on_meta_equals_memtracker_and_cpu(user_file, optimizer_class):
    reference = f"{user_file}:{optimizer_class}" if optimizer_class else ""
    spec = spec_of(f"{user_file}:factory", optimizer_class=reference, attention="sdpa-math")
    measured = measure(spec, "meta", count_flops=False).measured
    assert measured["peak_bytes"] == memtracker_peak(spec)
    assert byte_figures(measured) == byte_figures(measure(spec, "cpu", count_flops=False).measured)
    parameters = measured["categories_at_peak"]["parameters"]
    state = measured["phases"]["optimizer"]["categories_at_peak"]["optimizer_state"]
    # AdamW: two moments per parameter (its step counters are host scalars); SignSGD: one momentum
    assert state == (parameters if optimizer_class else 2 * parameters)


def test_a_users_model_is_attributed_by_its_module_paths_and_ops(user_file):
    spec = spec_of(f"{user_file}:factory", dropout=0.1, attention="sdpa-efficient")
    result = measure(spec, "meta")
    per_layer = result.saved_activations_per_layer
    assert set(per_layer) == {"0", "1"} and per_layer["0"] == per_layer["1"]
    B, T, D, F = 2, spec.model.context_length, spec.model.d_model, spec.model.d_ff
    assert per_layer["0"]["drop"] == B * T * D  # dropout as CUDA runs it: a bool mask, one byte an element
    assert per_layer["0"]["up"] == B * T * D * 4  # a linear layer keeps its input
    measured = result.measured
    assert "aten._scaled_dot_product_efficient_attention" in measured["saved_activations_by_op"]
    assert sum(measured["saved_activations_by_op"].values()) == measured["saved_activations_bytes"]
    assert sum(measured["saved_activations_by_component"].values()) == measured["saved_activations_bytes"]
    assert result.flops_by_component["up"] == 2 * B * T * D * F * 2  # two layers' forward matmul


def test_a_users_file_is_loaded_once_under_a_private_name(user_file):
    import model as ours

    measure(spec_of(f"{user_file}:factory"), "meta", count_flops=False)
    measure(spec_of(f"{user_file}:factory"), "meta", count_flops=False)
    loaded = [name for name, module in sys.modules.items()
              if getattr(module, "__file__", None) == str(user_file.resolve())]
    assert len(loaded) == 1 and loaded[0].startswith("_user_")
    assert sys.modules["model"] is ours


@pytest.mark.parametrize("source, changes, message", [
    ("{file}:missing", {}, "has no missing"),
    ("/no/such/file.py:factory", {}, "no file /no/such/file.py"),
    ("{file}:not_a_module", {}, "the factory returned int, not an nn.Module"),
    ("{file}:raises", {}, "the factory raised RuntimeError: out of ideas"),
    ("{file}:WrongShape", {}, "forward returned (2, 31, 256), expected logits of shape [2, 32, 256]"),
    ("{file}:factory", {"optimizer_class": "{file}:NotAnOptimizer"}, "is not a subclass of torch.optim.Optimizer"),
    ("{file}:factory", {"checkpointing": "full"}, "checkpoint inside your own model"),
    ("{file}:factory", {"kv_heads": 2}, "takes no kv_heads argument"),
])
def test_bad_users_code_is_one_line(user_file, source, changes, message):
    changes = {key: value.format(file=user_file) if isinstance(value, str) else value
               for key, value in changes.items()}
    with pytest.raises(ValueError, match=None) as error:
        measure(spec_of(source.format(file=user_file), **changes), "meta", count_flops=False)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_what_meta_cannot_run_names_the_users_line(tmp_path):
    path = tmp_path / "branchy.py"
    path.write_text(textwrap.dedent('''
        import torch.nn as nn

        class LM(nn.Module):
            def __init__(self, vocab_size, context_length, num_layers, d_model, num_heads, d_ff):
                super().__init__()
                self.embed, self.head = nn.Embedding(vocab_size, d_model), nn.Linear(d_model, vocab_size)

            def forward(self, tokens):
                x = self.embed(tokens)
                if x.sum() > 0:
                    x = x * 2
                return self.head(x)
        '''))
    with pytest.raises(ValueError) as error:
        measure(spec_of(f"{path}:LM"), "meta", count_flops=False)
    assert f"{path}:11: if x.sum() > 0:" in str(error.value) and "--device cpu" in str(error.value)


transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("source, changes", [
    ("hf:gpt2", {"arch": "gpt2"}),
    ("hf:gpt2", {"arch": "gpt2", "attention": "sdpa-efficient"}),
    ("hf:llama", {"arch": "llama", "kv_heads": 2}),
    ("hf:llama", {"arch": "llama", "kv_heads": 2, "attention": "sdpa-flash", "dtype": "bfloat16"}),
])
def test_hugging_face_models_on_meta_equal_memtracker(source, changes):
    """To the byte, but the RNG state CUDA keeps on the host (from each layer's forward to its backward: alive at a
    peak in forward or backward)."""
    spec = spec_of(source, **changes)
    measured = measure(spec, "meta", count_flops=False).measured
    host = (spec.model.num_layers * HOST_BYTES_PER_LAYER[spec.setup.attention]
            if measured["peak_phase"] != "optimizer" else 0)
    assert measured["peak_bytes"] == memtracker_peak(spec) - host


@pytest.mark.parametrize("source, changes", [("hf:gpt2", {"arch": "gpt2"}), ("hf:llama", {"arch": "llama"})])
def test_hugging_face_models_on_meta_equal_cpu(source, changes):
    spec = spec_of(source, **changes)
    on_meta = measure(spec, "meta", count_flops=False).measured
    assert byte_figures(on_meta) == byte_figures(measure(spec, "cpu", count_flops=False).measured)


def test_a_hugging_face_config_file_gives_the_sizes(tmp_path):
    from profiler.cli import main

    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "vocab_size": 128, "max_position_embeddings": 16, '
                    '"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, '
                    '"intermediate_size": 64}')
    from profiler.commands.options import spec_from_args
    import argparse

    args = argparse.Namespace(preset=None, source=f"hf:{path}", batch_size=1)
    spec = spec_from_args(args)
    assert (spec.model.arch, spec.model.kv_heads, spec.model.d_ff, spec.model.context_length) == ("llama", 2, 64, 16)
    assert main(["measure", "--model", f"hf:{path}", "--json"]) in (0, None)


def run_cli(capsys, *argv):
    from profiler.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["measure", "--model", "hf:gpt2", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "2"],
     "model hf:gpt2 runs on one device"),
    (["measure", "--model", "hf:gpt2", "--preset", "tiny", "--attention", "sdpa-flash"],
     "sdpa-flash runs float16 and bfloat16"),
    (["measure", "--model", "hf:llama", "--preset", "tiny", "--kv-heads", "2", "--attention", "sdpa-efficient"],
     "sdpa-efficient with 4 query heads and 2 key/value heads is not simulated"),
    (["measure", "--model", "hf:bert", "--preset", "tiny"], "a Hugging Face model is hf:gpt2, hf:llama"),
    (["audit", "--model", "hf:gpt2"], "choose what a --formula-set is audited against"),
])
def test_what_a_users_model_cannot_do_is_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_explain_lists_what_each_module_and_op_of_a_users_model_keeps(capsys, user_file):
    import json

    code, out, _ = run_cli(capsys, "explain", "--model", f"{user_file}:factory", "--preset", "tiny", "--json")
    document = json.loads(out)
    measured = measure(spec_of(f"{user_file}:factory", batch_size=1), "meta", count_flops=False).measured
    by_op = {name: row["measured"] for name, row in document["saved_activations_by_op"].items()}
    assert code == 0 and by_op == {name: value for name, value in measured["saved_activations_by_op"].items() if value}
    assert document["peak_bytes"]["measured"] == measured["peak_bytes"]


def test_audit_grades_a_users_formula_against_the_users_model(capsys, tmp_path, user_file, monkeypatch):
    from analytic import formula_sets as registry

    monkeypatch.setattr(registry, "_USER_SETS", {})  # the user's file stays out of other tests
    answer = tmp_path / "answer.py"
    answer.write_text(ANSWER)
    code, out, _ = run_cli(capsys, "audit", "--formula-set", str(answer), "--model", f"{user_file}:factory",
                           "--preset", "tiny", "--json")
    import json

    result = json.loads(out)
    assert code == 0 and result["config"]["source"] == f"{user_file}:factory"
    spec = spec_of(f"{user_file}:factory", batch_size=1)
    measured = measure(spec, "meta", count_flops=False).measured
    terms = {row["term"]: row for row in result["batches"][0]["terms"]}
    assert terms["saved_activations_bytes"]["measured"] == measured["saved_activations_bytes"]
    saved = next(item for item in result["batches"][0]["differences"] if item["term"] == "saved_activations_bytes")
    assert "the ops that keep the most: " + next(iter(measured["saved_activations_by_op"])) in saved["explanation"]


def test_a_grid_names_a_users_model_with_model(tmp_path, user_file):
    from profiler.experiments.grid import expand, load_grid

    path = tmp_path / "users.toml"
    path.write_text(f'[[points]]\npreset = "tiny"\nmodel = "hf:gpt2"\nbatch_sizes = [1]\n'
                    f'[[points]]\npreset = "tiny"\nmodel = "{user_file}:factory"\n'
                    f'optimizer_class = "{user_file}:SignSGD"\nbatch_sizes = [1]\n'
                    f'[[points]]\npreset = "tiny"\nbatch_sizes = [1]\n')
    points = expand(load_grid(path))
    assert [point.spec.model.source for point in points] == ["hf:gpt2", f"{user_file}:factory", "builtin"]
    assert points[0].spec.model.arch == "gpt2" and points[0].label == "tiny (hf:gpt2) b=1"
    assert points[1].key.startswith(f"{user_file}:factory-") and points[1].key.endswith(f"|{user_file}:SignSGD|meta")
    assert len({point.key for point in points}) == 3
    path.write_text('[[points]]\npreset = "tiny"\nsource = "hf:gpt2"\n')
    with pytest.raises(ValueError, match="source"):
        load_grid(path)


def test_a_sweep_measures_a_users_model_as_measure_does(tmp_path, user_file):
    from profiler.experiments.sweep import run_sweep

    path = tmp_path / "users.toml"
    path.write_text(f'[[points]]\npreset = "tiny"\nmodel = "{user_file}:factory"\nbatch_sizes = [2]\n')
    (row,) = run_sweep(path, tmp_path / "out", progress=False)
    spec = StepSpec.from_row(row)
    assert spec.model.source == f"{user_file}:factory"
    assert row["measured"]["peak_bytes"] == measure(spec, "meta", count_flops=False).measured["peak_bytes"]


def test_transformers_data_checks_are_answered_as_a_device_answers_them():
    """find_packed_sequence_indices asks a tensor for a Python bool, which meta cannot answer; the step's rows are
    one sequence each, so the answer is None, as on a real device."""
    from transformers import masking_utils

    from model.hf import device_answers

    positions = torch.arange(8)[None].expand(2, 8)
    with pytest.raises(RuntimeError, match="meta"):
        masking_utils.find_packed_sequence_indices(positions.to("meta"))
    with device_answers():
        assert masking_utils.find_packed_sequence_indices(positions.to("meta")) is None
        assert masking_utils.find_packed_sequence_indices(positions) is None  # real tensors: asked as they are


def test_hugging_face_checkpointing_on_meta_equals_cpu():
    spec = spec_of("hf:gpt2", arch="gpt2", checkpointing="full")
    on_meta = measure(spec, "meta", count_flops=False).measured
    assert byte_figures(on_meta) == byte_figures(measure(spec, "cpu", count_flops=False).measured)
    plain = measure(spec.replace(checkpointing="none"), "meta", count_flops=False).measured
    assert on_meta["saved_activations_bytes"] < plain["saved_activations_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("dropout, expected", [("0", 4), ("0.1", 2)])
def test_hugging_face_gpt2_xl_fits_what_its_own_code_needs(capsys, dropout, expected):
    """GPT-2 XL as published, in Hugging Face's code (gelu_new, eager attention), fp32, in 80 GB: 4 sequences
    without dropout, 2 with GPT-2's 0.1 (the built-in gpt2 block fits 5 and 3), each answer measured and the next
    batch measured not to fit."""
    import json

    code, out, _ = run_cli(capsys, "max-batch", "--model", "hf:gpt2", "--preset", "hf-gpt2-xl", "--budget", "80GB",
                           "--dropout", dropout, "--json")
    document = json.loads(out)
    probes = {probe["batch_size"]: probe["fits"] for probe in document["probes"]}
    assert code == 0 and document["max_batch"] == expected
    assert probes[expected] and not probes[expected + 1]


@pytest.mark.parametrize("source, arch", [("hf:gpt2", "gpt2"), ("hf:llama", "llama")])
def test_hugging_face_autocast_and_checkpointing_emulated_on_meta_equal_cpu(source, arch):
    """The autocast emulation with CPU's rules on meta, through Hugging Face's code and its checkpointing's
    recomputation, equals real CPU autocast byte for byte."""
    spec = spec_of(source, arch=arch, checkpointing="full", autocast="bfloat16")
    on_meta = measure(spec, "meta", count_flops=False, autocast_policy="cpu").measured
    assert byte_figures(on_meta) == byte_figures(measure(spec, "cpu", count_flops=False).measured)


@pytest.mark.parametrize("source, changes", [("builtin", {}), ("hf:gpt2", {"arch": "gpt2"})])
def test_flops_by_op_add_up_to_each_phase(source, changes):
    measured = measure(spec_of(source, **changes), "meta").measured
    for phase in ("forward", "backward", "optimizer"):
        assert sum(measured["flops_by_op"][phase].values()) == measured["flops"][phase]
    assert next(iter(measured["flops_by_op"]["forward"])) in ("aten.addmm", "aten.mm", "aten.bmm")
