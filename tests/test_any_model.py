"""The exact model of any model's code, derived from traces (analytic.exact.derivation.any_model): its numeric model and
its formulas equal measure() on meta at held-out sizes for the examples and the Hugging Face models; what does not
fit the form is named (op, module, sizes); `formula --model` prints only verified formulas, from a cache."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from analytic.exact import monomials
from analytic.exact.derivation.any_model import SIZE_SETS, derive_model, held_out_sizes, traced_spec, verify
from analytic.exact.derivation.fit import DerivationError
from analytic.exact.formula import evaluate
from analytic.exact.model_programs import ModelPrograms, formula_document
from analytic.exact.programs import compile_program, parse_term, term_token
from model import StepSpec
from profiler.cli import main
from profiler.measuring.measure import measure

FROM_SCRATCH = dict(source="examples/from_scratch.py:build", arch="llama",
                    optimizer_class="examples/from_scratch.py:AdamW")
SOURCES = {"nanogpt": dict(source="examples/nanogpt.py:build"), "from_scratch": FROM_SCRATCH,
           "hf_gpt2": dict(source="hf:gpt2", arch="gpt2"), "hf_llama": dict(source="hf:llama", arch="llama"),
           "hf_llama_grouped": dict(source="hf:llama", arch="llama", num_heads=4, kv_heads=2)}


def spec_of(**fields) -> StepSpec:
    return StepSpec.of(**{"vocab_size": 50, "context_length": 8, "num_layers": 2, "d_model": 16, "num_heads": 2,
                          "d_ff": 32, **fields})


@pytest.fixture(scope="module")
def derived():
    cache = {}

    def get(name):
        if name not in cache:
            if name.startswith("hf_"):
                pytest.importorskip("transformers")
            spec = spec_of(**SOURCES[name])
            cache[name] = spec, derive_model(spec)
        return cache[name]

    return get


def test_a_count_times_a_monomial_is_one_token():
    assert parse_term("+A:4*B*T*H*Dh") == ("+", "saved_activations", 4, "B*T*H*Dh")
    assert parse_term("-t:a") == ("-", "temporaries", 1, "a")
    assert term_token("+", "temporaries", 8, "1") == "+t:8*1" and term_token("+", "gradients", 1, "F") == "+G:F"
    moments, net = compile_program("+t:8*B*T +A:3*1 -t:8*B*T", ("saved_activations", "temporaries"), ("1", "B*T"))
    assert moments.tolist() == [[[0, 0], [0, 8]], [[3, 0], [0, 8]]] and net.tolist() == [[3, 0], [0, 0]]


def test_monomials_fit_byte_counts_at_prime_sizes():
    first, second, third = SIZE_SETS
    attention = [4 * s["B"] * s["H"] * s["T"] ** 2 for s in SIZE_SETS]
    common = set.intersection(*(set(monomials.fits(n, s)) for n, s in zip(attention, SIZE_SETS)))
    assert common == {("B*T^2*H", 4)}
    padded = [8 * s["B"] * (s["T"] + 1) for s in SIZE_SETS]  # a padded mask: no one monomial, a sum of two
    assert not set.intersection(*(set(monomials.fits(n, s)) for n, s in zip(padded, SIZE_SETS)))
    assert sorted(monomials.sums(padded, list(SIZE_SETS))) == [("B", 8), ("B*T", 8)]
    assert monomials.value("B*H*T^2", {"B": 2, "H": 3, "T": 5}) == 150
    assert monomials.powers("Dh^2*F") == (0, 0, 0, 2, 1, 0, 0, 0) and monomials.value("B*H*T32", {"B": 2, "H": 3,
                                                                                                  "T": 33}) == 384


@pytest.mark.parametrize("name", ["nanogpt", "from_scratch",
                                  pytest.param("hf_gpt2", marks=pytest.mark.slow),
                                  pytest.param("hf_llama", marks=pytest.mark.slow),
                                  pytest.param("hf_llama_grouped", marks=pytest.mark.slow)])
def test_derived_model_equals_measurement_at_held_out_sizes(derived, name):
    spec, document = derived(name)
    verified = verify(document, spec, count=3, seed=7)
    assert verified["differences"] == [] and verified["formulas_at"] >= 1


@pytest.mark.parametrize("name", ["nanogpt", "from_scratch", pytest.param("hf_gpt2", marks=pytest.mark.slow)])
def test_derived_flops_equal_measurement_at_held_out_sizes(derived, name):
    """Each phase's FLOPs and matmul FLOPs, as the formulas give them, are measure()'s at sizes never traced."""
    spec, document = derived(name)
    formulas = ModelPrograms(document).flop_formulas()
    assert set(formulas) == {"flops.forward", "flops.backward", "flops.optimizer", "flops.recompute",
                             "flops_matmul.forward", "flops_matmul.backward"}
    for sizes in held_out_sizes(3, seed=11):
        measured = measure(traced_spec(spec, sizes["L"], sizes), "meta", count_flops=True).measured
        values = {"L": sizes["L"], "B": sizes["B"], "T": sizes["T"], "D": sizes["H"] * sizes["Dh"], "H": sizes["H"],
                  "F": sizes["F"], "V": sizes["V"]}
        derived_flops = {key: evaluate(expression, values) for key, expression in formulas.items()}
        assert derived_flops == {f"{field}.{phase}": count for field in ("flops", "flops_matmul")
                                 for phase, count in measured[field].items()}, sizes
        assert derived_flops["flops.forward"] > derived_flops["flops_matmul.forward"] > 0


def test_flop_formulas_not_exact_at_held_out_sizes_are_not_shown(derived):
    _, document = derived("nanogpt")
    wrong = {**document, "verified": {**document.get("verified", {}), "flops_at": 3,
                                      "flop_differences": ["the formula of flops.forward gives 1, measured 2"]}}
    shown = formula_document(wrong)
    assert "flops" not in shown and "flops_matmul" not in shown and "peak_bytes" in shown
    assert shown["flops_not_shown"] == "not exact at held-out sizes (the formula of flops.forward gives 1, measured 2)"
    unverified = formula_document({**document, "verified": {"sizes": [], "differences": []}})
    assert "flops" not in unverified and unverified["flops_not_shown"] == "not verified at held-out sizes"


def test_zero_grad_zeros_is_derived_and_equals_measurement_at_held_out_sizes(derived):
    """With zero_grad 'zeros' the gradients outlive the warm-up step (zeroed in place, not freed): the measured
    step starts with them, and its backward adds into them."""
    none_spec, none_document = derived("nanogpt")
    spec = none_spec.replace(zero_grad="zeros")
    document = derive_model(spec)
    verified = verify(document, spec, count=3, seed=7)
    assert verified["differences"] == [] and verified["formulas_at"] >= 1
    sizes = {"B": 3, "T": 9, "H": 3, "Dh": 16, "F": 40, "V": 61, "L": 2}
    zeros, none = (ModelPrograms(d).figures(sizes)["phases"]["forward"]["start_bytes"].item()
                   for d in (document, none_document))
    parameters = measure(traced_spec(spec, 2, sizes), "meta", count_flops=False).measured["params"] * 4
    assert zeros - none == parameters  # a float32 gradient of every parameter


def test_derived_formula_at_gpt2_small_equals_measurement(derived):
    """Far from the traced sizes: GPT-2 small's, B = 2, nanoGPT-style code."""
    spec, document = derived("nanogpt")
    sizes = {"B": 2, "T": 1024, "H": 12, "Dh": 64, "F": 3072, "V": 50257, "L": 12}
    measured = measure(traced_spec(spec, 12, sizes), "meta", count_flops=True).measured
    programs = ModelPrograms(document)
    figures = programs.figures(sizes)
    assert figures["peak_bytes"].item() == measured["peak_bytes"]
    assert {k: v.item() for k, v in figures["categories_at_peak"].items()} == measured["categories_at_peak"]
    formulas = programs.formulas()
    values = {"L": 12, "B": 2, "T": 1024, "D": 768, "H": 12, "F": 3072, "V": 50257}
    for phase in ("forward", "backward", "optimizer"):
        assert evaluate(formulas[f"phases.{phase}.peak_bytes"], values) == measured["phases"][phase]["peak_bytes"]
    flops = programs.flop_formulas()
    for phase in ("forward", "backward", "optimizer", "recompute"):
        assert evaluate(flops[f"flops.{phase}"], values) == measured["flops"][phase]
    for phase in ("forward", "backward"):
        assert evaluate(flops[f"flops_matmul.{phase}"], values) == measured["flops_matmul"][phase]
    assert evaluate(formulas["saved_activations_bytes"], values) == measured["saved_activations_bytes"] == \
        12 * evaluate(formulas["saved_activations_per_layer_bytes"], values) + evaluate(
            formulas["saved_activations_outside_layers_bytes"], values)


def test_numeric_model_takes_arrays(derived):
    spec, document = derived("from_scratch")
    programs = ModelPrograms(document)
    batches = np.array([2, 3, 5])
    sizes = {"B": batches, "T": 9, "H": 3, "Dh": 16, "F": 40, "V": 61, "L": 3}
    together = programs.figures(sizes)["peak_bytes"]
    assert together.tolist() == [programs.figures(dict(sizes, B=int(b)))["peak_bytes"].item() for b in batches]


MODELS = '''
import torch
import torch.nn as nn


class Shifted(nn.Module):
    """Keeps the difference of consecutive positions: B·(T − 1)·D elements, no count × monomial."""

    def __init__(self, vocab_size, context_length, num_layers, d_model, num_heads, d_ff):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = torch.cat([x[:, :1], x[:, 1:] - x[:, :-1]], dim=1)
        return self.head(x)


class LongOnly(nn.Module):
    """One more op from 10 tokens on: the op sequence changes with T (between the traced 7 and 37)."""

    def __init__(self, vocab_size, context_length, num_layers, d_model, num_heads, d_ff):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        x = self.embed(tokens)
        if tokens.shape[1] > 10:
            x = x * 2
        return self.head(x)
'''


@pytest.fixture
def models_file(tmp_path):
    path = tmp_path / "odd_models.py"
    path.write_text(textwrap.dedent(MODELS))
    return path


def test_what_fits_no_monomial_is_named(models_file):
    with pytest.raises(DerivationError, match=r"aten\.sub in \(the model\).*fits no count × monomial"):
        derive_model(spec_of(source=f"{models_file}:Shifted"))


def test_an_op_sequence_that_changes_with_the_sizes_is_named(models_file):
    changes = r"op sequence changes with the sizes: event 2 is aten\.addmm .* in head .* aten\.mul .* in \(the model\)"
    changes += ".*T=37"
    with pytest.raises(DerivationError, match=changes):
        derive_model(spec_of(source=f"{models_file}:LongOnly"))


def test_formula_command_prints_verified_formulas_from_its_cache(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    argv = ["formula", "--model", "examples/nanogpt.py:build", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verified"]["differences"] == [] and len(document["verified"]["held_out_sizes"]) == 3
    config = spec_of(source="examples/nanogpt.py:build").replace(num_layers=3, batch_size=4).model
    measured = measure(spec_of(source="examples/nanogpt.py:build").replace(num_layers=3, batch_size=4), "meta",
                       count_flops=True).measured
    names = {"L": 3, "B": 4, "T": config.context_length, "D": config.d_model, "H": config.num_heads,
             "F": config.d_ff, "V": config.vocab_size}
    assert python_value(document["peak_bytes"], names) == measured["peak_bytes"]
    # the FLOPs, as the built-in model's formula document has them, verified at the held-out sizes
    assert document["verified"]["flops_at"] == 3 and document["verified"]["flop_differences"] == []
    assert {field: {phase: python_value(value, names) for phase, value in document[field].items()}
            for field in ("flops", "flops_matmul")} == {field: measured[field] for field in ("flops", "flops_matmul")}
    assert set(document["flops"]) == {"forward", "backward", "optimizer", "recompute"}
    assert set(document["flops_matmul"]) == {"forward", "backward"}
    assert list((tmp_path / "adamw-profiler" / "models").glob("*.json.gz"))
    # the degenerate layouts, each derived and verified on its own: B = 1 and H = 1 measured at untraced sizes
    layouts = {domain.split(", T")[0]: figures for domain, figures in document["layouts"].items()}
    assert set(layouts) == {"B = 1, H >= 2", "B >= 2, H = 1", "B = 1, H = 1"}
    for key, batch, heads in (("B = 1, H >= 2", 1, 2), ("B >= 2, H = 1", 3, 1), ("B = 1, H = 1", 1, 1)):
        spec = spec_of(source="examples/nanogpt.py:build").replace(num_layers=3, batch_size=batch, num_heads=heads,
                                                                   d_model=8 * heads * 3, context_length=11)
        at = dict(names, B=batch, H=heads, D=spec.model.d_model, T=11)
        assert python_value(layouts[key]["peak_bytes"], at) == \
            measure(spec, "meta", count_flops=False).measured["peak_bytes"], key
    # the largest batch solved from the formula: its step fits the budget, one more does not (measured)
    budget = measured["peak_bytes"] * 5 // 2
    answer = python_value(document["max_batch"], dict(names, M=budget))
    assert answer >= 2 and [measure(spec_of(source="examples/nanogpt.py:build").replace(num_layers=3, batch_size=b),
                                    "meta", count_flops=False).measured["peak_bytes"] <= budget
                            for b in (answer, answer + 1)] == [True, False]

    def no_derivation(spec):
        raise AssertionError("derived again")

    monkeypatch.setattr("analytic.exact.derivation.model_cache.derive_model", no_derivation)
    assert main(["formula", "--model", "examples/nanogpt.py:build", "--preset", "gpt2-small"]) == 0
    out = capsys.readouterr().out
    assert "Exact at 3 held-out sizes" in out and "forward peak = " in out


def python_value(expression: str, names: dict) -> int:
    """A `formula --json` expression's value (Python with max() only)."""
    return eval(expression, {"__builtins__": {}, "max": max}, names)  # noqa: S307


def test_formula_of_code_that_fits_no_monomial_is_refused_in_one_line(capsys, monkeypatch, tmp_path, models_file):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["formula", "--model", f"{models_file}:Shifted", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no exact formula of") and "measures it" in err[-1]


def against(capsys, monkeypatch, tmp_path, *argv) -> dict:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["explain", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def names_of(config, batch: int) -> dict:
    return {"L": config.num_layers, "B": batch, "T": config.context_length, "D": config.d_model,
            "H": config.num_heads, "F": config.d_ff, "V": config.vocab_size}


@pytest.mark.slow
def test_against_gives_the_difference_of_the_measured_saved_activations(capsys, monkeypatch, tmp_path):
    """nanoGPT-style code against our gpt2 block: the derived per-layer and outside differences, evaluated, are the
    difference of what is measured; each largest batch is the highest the numeric model fits in the budget."""
    document = against(capsys, monkeypatch, tmp_path, "--model", "examples/nanogpt.py:build", "--against", "builtin",
                       "--preset", "tiny", "--arch", "gpt2", "--dropout", "0", "--budget", "20MB")
    spec = StepSpec.of(source="examples/nanogpt.py:build", arch="gpt2", dropout=0.0, **{
        name: document["config"][name] for name in ("vocab_size", "context_length", "num_layers", "d_model",
                                                    "num_heads", "d_ff")}).replace(batch_size=2)
    mine, ours = (measure(one, "meta", count_flops=False).measured for one in (spec, spec.replace(source="builtin")))
    names = names_of(spec.model, 2)
    text = document["difference"]
    per_layer, outside = (eval(text[where]["total"], {}, names)  # noqa: S307
                          for where in ("per_layer", "outside_layers"))
    assert spec.model.num_layers * per_layer + outside == \
        mine["saved_activations_bytes"] - ours["saved_activations_bytes"]
    assert document["model"]["peak_bytes"] == mine["peak_bytes"] and document["against"]["peak_bytes"] == \
        ours["peak_bytes"]
    for role, measured in (("model", mine), ("against", ours)):
        batch = document[role]["max_batch"]
        assert measure(spec.replace(batch_size=batch, source=document[role]["source"]), "meta",
                       count_flops=False).measured["peak_bytes"] <= 20 * 10 ** 6
        assert measure(spec.replace(batch_size=batch + 1, source=document[role]["source"]), "meta",
                       count_flops=False).measured["peak_bytes"] > 20 * 10 ** 6


@pytest.mark.slow
def test_hf_gpt2_against_our_block_is_gelu_new(capsys, monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    document = against(capsys, monkeypatch, tmp_path, "--model", "hf:gpt2", "--against", "builtin", "--preset",
                       "tiny", "--dropout", "0")
    assert document["difference"]["per_layer"] == {
        "total": "12*B*F*T", "by_op": {"aten.mul": "8*B*F*T", "aten.add": "4*B*F*T", "aten.gelu": "-4*B*F*T",
                                       "aten.tanh": "4*B*F*T"}}
    assert document["difference"]["parameters"] == "0"


@pytest.mark.parametrize("fields", [{}, {"arch": "llama", "num_heads": 4, "kv_heads": 2}], ids=["reference", "gqa"])
def test_our_block_through_the_new_path_equals_the_shipped_programs(fields):
    """The built-in reference block, and llama's with grouped-query attention, derived as any model's code: its
    figures equal the shipped programs' at random sizes of the new path's domain (B, H >= 2, head sizes a multiple
    of 8; 2 <= G < H), far beyond the traced sizes."""
    from analytic.formula_sets import exact_set

    spec = spec_of(source="builtin", **fields)
    programs = ModelPrograms(derive_model(spec))
    rng = np.random.default_rng(31)
    for _ in range(20):
        H, Dh, T, L, F, V, B = (int(rng.integers(low, high)) for low, high in (
            (2, 7), (1, 9), (2, 300), (1, 13), (2, 500), (2, 3000), (2, 17)))
        sizes = {"B": B, "T": T, "H": H, "Dh": 8 * Dh, "F": F, "V": V, "L": L}
        if "kv_heads" in fields:
            sizes.update(G=H, H=H * int(rng.integers(2, 4)))
        shipped = exact_set().predict(traced_spec(spec, L, sizes))
        derived = programs.figures(sizes)
        assert derived["peak_bytes"] == shipped["peak_bytes"], sizes
        for phase in ("forward", "backward", "optimizer"):
            assert derived["phases"][phase]["peak_bytes"] == shipped["phases"][phase]["peak_bytes"], (sizes, phase)
