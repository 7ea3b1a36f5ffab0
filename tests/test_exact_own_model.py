"""The exact set answers for a user's model from the exact model derived from traces of its code (analytic.exact.
ExactSet's models): measure, predict and max-batch; B = 1 and H = 1 are their own layout classes, derived there."""
from __future__ import annotations

import json

import pytest

from analytic.exact.model_programs import layout_ones, outside_domain
from analytic.figures import flatten
from analytic.units import format_bytes
from model import StepSpec
from profiler.cli import main

NANOGPT = ["--model", "examples/nanogpt.py:build", "--preset", "tiny", "--arch", "gpt2"]


def run_json(capsys, monkeypatch, tmp_path, *argv) -> tuple[dict, str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


@pytest.mark.parametrize("batch, heads", [(1, 4), (3, 4), (3, 1), (1, 1)])  # B = 1, H = 1: their own layout classes
def test_measure_of_a_users_model_has_the_exact_column_equal_to_the_measurement(capsys, monkeypatch, tmp_path,
                                                                                 batch, heads):
    document, _ = run_json(capsys, monkeypatch, tmp_path, "measure", *NANOGPT, "--batch-size", str(batch),
                           "--num-heads", str(heads))
    measured, exact = flatten(document["measured"]), flatten(document["predicted"]["exact"])
    assert {"peak_bytes", "phases.optimizer.peak_bytes", "saved_activations_bytes", "params",
            "categories_at_peak.gradients"} <= set(exact)
    assert {key: exact[key] for key in exact if key in measured} == {key: measured[key] for key in exact
                                                                     if key in measured}


def test_outside_the_derived_domain_the_exact_set_says_why_in_one_line_and_the_others_answer(capsys, monkeypatch,
                                                                                              tmp_path):
    document, err = run_json(capsys, monkeypatch, tmp_path, "predict", *NANOGPT, "--d-model", "60")
    assert document["sets"]["exact"] == {}
    assert document["sets"]["textbook"]["peak_bytes"] > 0
    assert " ".join(line.strip() for line in err.splitlines()) == (  # one note, wrapped at 120 columns
        "note: the exact set has no answer for examples/nanogpt.py:build: a head size d_model/heads of 15 (a multiple "
        "of 8 is derived)")


def test_the_domain_of_a_derived_model():
    spec = StepSpec.of(vocab_size=50, context_length=8, num_layers=2, d_model=16, num_heads=2, d_ff=32,
                       batch_size=4, source="examples/nanogpt.py:build")
    assert outside_domain(spec) is None
    assert outside_domain(spec.replace(batch_size=1, num_heads=1)) is None  # B = 1, H = 1: their own classes
    assert layout_ones(spec) == () and layout_ones(spec.replace(batch_size=1, num_heads=1)) == ("B", "H")
    multi_query = spec.replace(d_model=32, num_heads=4, kv_heads=1)  # one key/value head: its own class too
    assert outside_domain(multi_query) is None and layout_ones(multi_query) == ("G",)
    assert layout_ones(multi_query.replace(batch_size=1)) == ("B", "G")
    assert outside_domain(spec.replace(d_model=20)) == "a head size d_model/heads of 10 (a multiple of 8 is derived)"
    assert outside_domain(spec.replace(context_length=1)) == "a context length of 1 (T >= 2 is derived)"


@pytest.mark.parametrize("budget, answer", [("3MB", 4), ("2371300B", 1)])  # 1: from the layout class B = 1
def test_max_batch_of_a_users_model_starts_from_the_exact_sets_answer(capsys, monkeypatch, tmp_path, budget, answer):
    document, _ = run_json(capsys, monkeypatch, tmp_path, "max-batch", *NANOGPT, "--budget", budget)
    assert (document["guess"], document["predicted"]["exact"], document["max_batch"]) == (answer, answer, answer)
    assert document["guessed_by"] == "the exact set's answer" and document["exact_confirmed"] is True
    assert document["probes"] == [{"batch_size": answer, "fits": True}, {"batch_size": answer + 1, "fits": False}]


@pytest.mark.slow
def test_max_batch_of_hf_gpt2_xl_in_80gb_is_the_exact_sets_2_confirmed(capsys, monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    document, _ = run_json(capsys, monkeypatch, tmp_path, "max-batch", "--model", "hf:gpt2", "--preset",
                           "hf-gpt2-xl", "--budget", "80GB")
    assert (document["guess"], document["max_batch"], document["exact_confirmed"]) == (2, 2, True)
    assert document["probes"] == [{"batch_size": 2, "fits": True}, {"batch_size": 3, "fits": False}]


# A user's formula set, the text of its file (tests/test_implementations.py audits it too)
ANSWER = '''
NAME = "answer"
DESCRIPTION = "16 bytes a parameter and 34 B·T·D bytes a layer"

def predict(spec):
    c, B = spec.model, spec.batch_size
    params = 12 * c.num_layers * c.d_model ** 2 + 2 * c.vocab_size * c.d_model
    saved = 34 * B * c.context_length * c.d_model * c.num_layers
    return {"params": params, "saved_activations_bytes": saved, "peak_bytes": 16 * params + saved}
'''


def test_audit_of_a_users_formula_stands_it_beside_the_derived_one(capsys, monkeypatch, tmp_path):
    from analytic import formula_sets as registry

    monkeypatch.setattr(registry, "_USER_SETS", {})  # the user's file stays out of other tests
    answer = tmp_path / "answer.py"
    answer.write_text(ANSWER)
    result, _ = run_json(capsys, monkeypatch, tmp_path, "audit", "--formula-set", str(answer), *NANOGPT[:4])
    terms = result["formula"]["terms"]
    (derived, _), (theirs, differences) = [(row["formula"], row["differences"]) for row in terms["params"]]
    assert derived == "12·L·D² + 13·D·L + D·T + D·V + 2·D"  # tied embeddings: D·V once; biases, learned positions
    assert differences == [["D·V", "2", "1"], ["D·T", "0", "1"], ["D·L", "0", "13"], ["D", "0", "2"]]
    saved = dict((m, (a, b)) for m, a, b in terms["saved_activations_bytes"][1]["differences"])
    assert saved["B·D·L·T"] == ("34", "64") and saved["B·T·V"] == ("0", "4")


def test_the_implementations_report_gives_each_models_derived_per_layer_formula_and_its_difference(monkeypatch,
                                                                                                    tmp_path):
    from analytic import formula_sets as registry
    from analytic.exact.derivation.model_cache import verified_model
    from analytic.exact.derivation.on_demand import deriving_programs
    from analytic.exact.formula import evaluate, size_values
    from profiler.measuring.measure import measure
    from profiler.reports.implementations import derived_per_layer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(registry, "_EXACT", {})
    registry.use_exact_programs(deriving_programs(quiet=True), models=verified_model)
    ours = StepSpec.of(vocab_size=50, context_length=40, num_layers=2, d_model=32, num_heads=2, d_ff=48, arch="gpt2",
                       batch_size=3)
    theirs = ours.replace(source="examples/nanogpt.py:build")
    rows = [{"outcome": "ok", "config": spec.flat(), "batch_size": 3, "optimizer": "foreach"}
            for spec in (ours, theirs)]
    (record,) = derived_per_layer(rows)
    assert record["implementation"] == "examples/nanogpt.py:build"
    per_layer = {spec: measure(spec, "meta", count_flops=False).measured["saved_activations_per_layer_bytes"]
                 for spec in (ours, theirs)}
    sizes = size_values(theirs)
    assert evaluate(record["per_layer"], sizes) == per_layer[theirs]
    assert evaluate(record["vs_ours"], sizes) == per_layer[theirs] - per_layer[ours]


@pytest.mark.slow
def test_multi_query_attention_is_a_layout_class_of_its_own(capsys, monkeypatch, tmp_path):
    """Hugging Face's Llama with one key/value head of four: derived in its own class (its k and v are a head wide),
    cached apart from the same options' other layouts, verified at held-out sizes, and the exact set's answer at an
    untraced size equals the measurement."""
    pytest.importorskip("transformers")
    from analytic.exact import store
    from analytic.exact.derivation.model_cache import cached_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = StepSpec.of(vocab_size=50, context_length=8, num_layers=2, d_model=32, num_heads=4, d_ff=32, arch="llama",
                       source="hf:llama")
    multi_query = spec.replace(kv_heads=1)
    assert cached_path(multi_query, ("G",)) != cached_path(spec)
    sizes = ["--model", "hf:llama", "--arch", "llama", "--vocab-size", "61", "--context-length", "13", "--num-layers",
             "3", "--d-model", "48", "--num-heads", "6", "--kv-heads", "1", "--d-ff", "40", "--batch-size", "3"]
    document, _ = run_json(capsys, monkeypatch, tmp_path, "measure", *sizes)
    measured, exact = flatten(document["measured"]), flatten(document["predicted"]["exact"])
    assert "peak_bytes" in exact and {key: exact[key] for key in exact if key in measured} == \
        {key: measured[key] for key in exact if key in measured}
    found = store.read(next((tmp_path / "adamw-profiler" / "models").glob("*.json.gz")))
    assert found["ones"] == ["G"] and "multi-query" in found["domain"] and found["verified"]["differences"] == []
    assert main(["formula", *sizes, "--wide"]) == 0  # its formula, with the spec's values from its own layout
    peak = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("peak of the step"))
    assert peak.endswith(f"[{format_bytes(document['measured']['peak_bytes'], 'GiB', 3)}]")
