import json

import pytest

from analytic import audit as audit_module
from analytic.audit import TOLERANCE, audit, classify, to_markdown
from analytic.seeds import seed_modules

RESULT = audit()
SEEDS = RESULT["seeds"]
S000, S001, S002, S003, S004 = (SEEDS[m.SEED_FILE] for m in seed_modules())


def kind(block, key):
    return block["checks"][key]["kind"]


def flag(block, key):
    (text,) = [f for f in block["flags"] if f.startswith(key + ":")]
    return text


def test_shape():
    assert set(RESULT) >= {"seeds", "textbook", "problem", "tolerance"}
    assert list(SEEDS) == [m.SEED_FILE for m in seed_modules()]
    for block in SEEDS.values():
        assert {"stated", "recomputed", "flags", "checks"} <= set(block)
        assert set(block["stated"]) <= set(block["recomputed"])
    assert 0 < TOLERANCE <= 0.02
    json.loads(json.dumps(RESULT))


def test_every_reason_belongs_to_a_flagged_figure():
    for module in seed_modules():
        block = SEEDS[module.SEED_FILE]
        flagged = {key for key, check in block["checks"].items() if not check["follows"]}
        assert set(module.REASONS) <= flagged
        assert len(block["flags"]) == len(flagged)


def test_seed_000_reproduced_except_its_adamw_constant():
    for key in ("params", "fixed_memory_bytes", "per_batch_memory_bytes", "max_batch_80GB", "training_days"):
        assert kind(S000, key) == "follows", key
    assert S000["recomputed"]["params"] == 1_637_176_000
    assert S000["recomputed"]["max_batch_80GB"] == 3
    assert kind(S000, "adamw_flops_per_param") == "contradicts its own itemisation"
    assert S000["recomputed"]["adamw_flops_per_param"] == 15  # 3 + 4 + 8, stated 11


def test_seed_001_gib_labelled_gb_and_80gib_budget():
    assert kind(S001, "params") == "follows"  # 2.13B for 2,126,902,400
    assert kind(S001, "fixed_memory_bytes") == "GB stated, GiB computed"  # 31.7 "GB" = 34.03e9 B
    assert kind(S001, "per_batch_memory_bytes") == "GB stated, GiB computed"  # 14.4 "G" = 15.52e9 B
    assert kind(S001, "max_batch_80GB") == "80GB vs 80GiB"
    assert S001["recomputed"]["max_batch_80GB"] == 2 and "80 GiB budget gives 3" in flag(S001, "max_batch_80GB")
    assert kind(S001, "adamw_flops_per_param") == "unexplained constant"  # 16, never derived
    assert kind(S001, "training_days") == "follows"  # 6380 for 6,353.9


def test_seed_002_hardcoded_params_and_printed_number():
    assert kind(S002, "params") == "does not follow"  # 1.56e9 hard-coded, its N = 1,635,537,600
    assert S002["recomputed"]["params"] == 1_635_537_600
    assert kind(S002, "max_batch_80GB") == "does not follow"  # printed 12284768211.92053
    assert S002["recomputed"]["max_batch_80GB"] == 3
    assert "cannot produce" in flag(S002, "max_batch_80GB")
    assert kind(S002, "adamw_flops") == "does not follow"
    assert kind(S002, "adamw_flops_per_param") == "follows"  # 2 + 6 = 8
    assert kind(S002, "training_days") == "does not follow"  # 12.83 stated
    assert S002["recomputed"]["training_days"] == pytest.approx(14658, abs=1)


def test_seed_003_params_exact_and_training_days_1000x():
    assert S003["stated"]["params"] == S003["recomputed"]["params"] == 2_127_057_600
    assert S003["stated"]["adamw_flops"] == S003["recomputed"]["adamw_flops"] == 31_905_864_000
    assert kind(S003, "flops_per_step") == "follows"  # 10.26 PFLOPs
    assert kind(S003, "training_days") == "1000x slip"  # 4.87 days for 4,875
    assert S003["recomputed"]["training_days"] == pytest.approx(4875, abs=1)
    assert kind(S003, "fixed_memory_bytes") == "GB stated, GiB computed"  # "31.70 GB"
    assert kind(S003, "per_batch_memory_bytes") == "does not follow"
    assert "unexplained constant" in flag(S003, "per_batch_memory_bytes")  # 2.265 GB
    assert S003["recomputed"]["per_batch_memory_bytes"] == 14_053_609_472
    assert kind(S003, "max_batch_80GB") == "does not follow"  # 21 stated, 3 from its formulas
    assert S003["recomputed"]["max_batch_80GB"] == 3


def test_seed_004_bf16_figures_batch_1_and_80gib():
    for key in ("params", "fixed_memory_bytes", "per_batch_memory_bytes", "adamw_flops"):
        assert kind(S004, key) == "follows", key  # 1.64B, 12.20 GiB, 4.35 GiB (bf16), 0.0262 TFLOPs
    assert kind(S004, "max_batch_80GB") == "80GB vs 80GiB"  # 15 fits 80 GiB, 14 fits 80 GB
    assert S004["recomputed"]["max_batch_80GB"] == 14
    assert kind(S004, "training_days") == "batch=1 slip"  # 5.02 days
    assert S004["recomputed"]["training_days"] == pytest.approx(5127.4, abs=0.1)
    assert kind(S004, "adamw_flops_per_param") == "contradicts its own itemisation"  # 14 itemised, 16 used
    assert kind(S004, "flops_per_step") == "does not follow"  # "1.0571 TeraFLOPs" = /1e13 at batch 1


def test_classify_readings():
    none = {"max_batch_80GB": 0, "training_days": 1.0, "fixed_memory_bytes": 1}
    assert classify("training_days", 5.0, 5000.0, none, none) == "1000x slip"
    assert classify("training_days", 5000.0, 5.0, none, none) == "1000x slip"
    assert classify("training_days", 5.0, 5.04, none, none) == "follows"
    assert classify("training_days", 5.0, 5.2, none, none) == "does not follow"
    assert classify("training_days", 5.0, 5120.0, none, {"training_days": 5.0}) == "batch=1 slip"
    assert classify("fixed_memory_bytes", 31.7e9, 31.7 * 2**30, none, none) == "GB stated, GiB computed"
    assert classify("max_batch_80GB", 3, 2, {"max_batch_80GB": 3}, none) == "80GB vs 80GiB"
    assert classify("max_batch_80GB", 3, 3, none, none) == "follows"
    assert classify("params", 16, None, none, none) == "unexplained constant"


def test_extra_blocks_and_markdown():
    result = audit(extra_blocks={"exact": {"params": 1_637_176_000, "max_batch_80GB": 2}})
    assert result["exact"]["max_batch_80GB"] == 2
    text = to_markdown(result)
    header = next(line for line in text.splitlines() if line.startswith("| seed |"))
    assert header.endswith("| textbook | exact |")
    for module in seed_modules():
        assert f"## {module.SEED_FILE}" in text
    assert "1000x slip" in text and "80GB vs 80GiB" in text
    with pytest.raises(ValueError):
        audit(extra_blocks={"seeds": {}})
    assert audit_module.FIGURES[0] == "params"


def test_audit_of_any_formula_set_flags_what_pytorch_does_otherwise(tmp_path, monkeypatch):
    """`audit --formula-set`: the textbook, on its own setup, counts w1's output where autograd keeps its input
    and misses foreach AdamW's temporaries; the exact set differs nowhere; a user's file is audited too."""
    import analytic.formula_sets as registry
    from model import PRESETS
    from profiler.experiments.assumptions import audit_formula_set, to_markdown

    monkeypatch.setattr(registry, "_USER_SETS", {})  # the user's file stays out of other tests

    base = PRESETS["mini"]
    textbook = audit_formula_set("textbook", base)
    first = {item["term"]: item for item in textbook["batches"][0]["differences"]}
    assert first["saved_activations_by_component.w1"]["difference"] > 0
    assert "keeps its input, not its output" in first["saved_activations_by_component.w1"]["explanation"]
    assert first["categories_at_peak.optimizer_temporaries"]["predicted"] == 0
    assert "misses optimizer temporaries at the peak" in to_markdown(textbook)
    exact = audit_formula_set("exact", base)
    assert all(not batch["differences"] for batch in exact["batches"])
    assert "nowhere: every term it predicts is measured exactly" in to_markdown(exact)
    mine = tmp_path / "mine.py"
    mine.write_text("NAME = 'audited_mine'\nDESCRIPTION = '16 bytes per parameter'\n"
                    "from analytic.params import parameter_count\n"
                    "def predict(spec):\n"
                    "    return {'peak_bytes': 16 * parameter_count(spec.model)}\n")
    result = audit_formula_set(str(mine), base)
    assert result["formula_set"] == "audited_mine"
    assert result["batches"][0]["differences"][0]["term"] == "peak_bytes"
