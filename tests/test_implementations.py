"""A user's own model and optimizer (--model FILE.py:NAME, --optimizer-class) and Hugging Face models, measured as
the built-in model is: on meta equal to CPU and to torch's MemTracker, bad input one line."""
import sys
import textwrap

import pytest

from model import StepSpec, preset
from profiler import measure
from tests.memtracker import HOST_BYTES_PER_LAYER, byte_figures, memtracker_peak

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
    """To the byte, but the RNG state CUDA keeps on the host."""
    spec = spec_of(source, **changes)
    measured = measure(spec, "meta", count_flops=False).measured
    host = spec.model.num_layers * HOST_BYTES_PER_LAYER[spec.setup.attention]
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
