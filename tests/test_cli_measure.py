"""The measure, explain and audit commands as a user runs them."""
import json

import pytest

from profiler.cli import main


def test_measure_prints_every_set_that_describes_the_setup(capsys):
    assert main(["measure", "--preset", "tiny", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "peak in the optimizer phase" in out
    peak_line = next(line for line in out.splitlines() if line.startswith("peak_bytes"))
    assert next(cell for cell in peak_line.split() if cell.endswith("%")) == "+0.0%"  # exact, first after it
    assert "textbook" in out and "seed_000" in out and "seed_004" not in out  # seed 004 describes bf16
    assert main(["measure", "--preset", "tiny", "--batch-size", "2", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "seed_004" in out and "seed_000" not in out


def test_measure_json_has_the_documented_keys(capsys):
    assert main(["measure", "--preset", "tiny", "--batch-size", "2", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["torch_version"]
    measured = result["measured"]
    for phase in ("forward", "backward", "optimizer"):
        assert measured["phases"][phase]["peak_bytes"] > 0 and measured["flops"][phase] > 0
    assert set(measured["flops_matmul"]) == {"forward", "backward"}
    assert measured["peak_bytes"] == result["predicted"]["exact"]["peak_bytes"]
    assert sum(measured["saved_activations_by_component"].values()) == measured["saved_activations_bytes"]


def test_explain_tables(capsys):
    assert main(["explain", "--preset", "tiny", "--batch-size", "2", "--markdown"]) == 0
    out = capsys.readouterr().out
    softmax = next(line for line in out.splitlines() if line.startswith("| softmax |"))
    cells = [cell.strip() for cell in softmax.split("|")]
    assert cells[3] == cells[4]  # exact == measured
    assert "optimizer_temporaries" in out and "peak (optimizer)" in out


@pytest.mark.slow
def test_explain_fits_120_columns_by_default(capsys):
    """The bytes in a table, each row's formula and reason wrapped under it: the same rows as --markdown's."""
    assert main(["explain", "--preset", "gpt2-xl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 120
    softmax = lines.index(next(line for line in lines if line.startswith("softmax ")))
    assert lines[softmax].split()[1:] == ["4.688", "GiB"] * 3
    assert lines[softmax + 1].startswith("    4·H·T² per layer")
    assert any(line.startswith("peak (optimizer) ") for line in lines)


def test_explain_a_checkpointed_block_keeps_its_input(capsys):
    assert main(["explain", "--preset", "gpt2-small", "--batch-size", "2", "--checkpointing", "full",
                 "--markdown"]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:6]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    textbook, exact, measured, why = rows["checkpoint"]
    assert exact == measured == "0.070 GiB" and why.startswith("4·B·D·T per layer")  # 12 block inputs, B·T·D·4
    assert rows["softmax"][1] == rows["softmax"][2] == "0.000 GiB"  # recomputed in backward, not kept


def test_explain_follows_the_setup(capsys):
    """Gradients outlive the step with zero_grad 'zeros' (and a micro-batch with accumulation); flash attention
    keeps a logsumexp, not the B·H·T² probabilities."""
    assert main(["explain", "--preset", "tiny", "--batch-size", "4", "--micro-batches", "2", "--zero-grad", "zeros",
                 "--attention", "sdpa-flash", "--dtype", "bfloat16", "--markdown"]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:6]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "with zero_grad 'zeros', .grad exists through forward and backward" in rows["gradients"][3]
    assert rows["sdpa"][3].startswith("B·(8·D·T + 4·H·T) per layer")  # q, k, v, output in bf16; fp32 logsumexp
    assert rows["softmax"][3].startswith("0 per layer")


def test_audit_json_carries_exact_and_measured_blocks(capsys, monkeypatch):
    import profiler.experiments.truth as truth
    from model import preset
    small = truth.PROBLEM.replace(config=preset("mini"), budget_bytes=5 * 10**7, batch_size=8)
    monkeypatch.setattr(truth, "PROBLEM", small)
    blocks = truth.truth_blocks(with_measurement=True, problem=small)
    assert blocks["exact"]["max_batch_80GB"] == blocks["measured"]["max_batch_80GB"] > 0
    assert blocks["exact"]["flops_per_step"] == blocks["measured"]["flops_per_step"]
    published = ("exact, as published", "measured, as published")  # mini's sizes with GPT-2's block
    assert blocks[published[0]]["max_batch_80GB"] == blocks[published[1]]["max_batch_80GB"] > 0
    assert blocks[published[0]]["params"] < blocks["exact"]["params"]  # tied embedding
    assert main(["audit", "--json", "--no-measure"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["exact"]["max_batch_80GB"] == 5 and "measured" not in result


def test_steps_measured_in_parallel_give_the_serial_figures(monkeypatch):
    import pytest

    import profiler.measuring.parallel as parallel
    from model import StepSpec, preset
    from profiler.measuring.measure import measure_flops, step_phases
    calls = [(step_phases, (StepSpec(preset("mini"), batch_size=batch),)) for batch in (1, 3, 2)] + \
        [(measure_flops, (StepSpec(preset("tiny"), batch_size=2),))]
    in_parallel = parallel.run_calls(calls, "test", progress=False)
    monkeypatch.setattr(parallel, "workers_for", lambda calls: 1)
    assert in_parallel == parallel.run_calls(calls, "test", progress=False)
    assert in_parallel[0]["peak_bytes"] < in_parallel[2]["peak_bytes"] < in_parallel[1]["peak_bytes"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="batch_size must be positive"):
        parallel.run_calls([(step_phases, (StepSpec(preset("mini"), batch_size=0),))] * 2, "test", progress=False)


def test_measure_prints_human_units_and_no_infinite_error(capsys):
    assert main(["measure", "--preset", "tiny", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "0.00 GiB" not in out and "inf%" not in out and "MiB (" in out and "KiB (" in out
    # the textbook's saved activations at a peak where the measurement holds none: ∞, explained once under the table
    saved = next(line for line in out.splitlines() if line.startswith("categories_at_peak.saved_activations"))
    assert "∞" in saved.split() and "new term" not in out
    from profiler.reports.tables import UNBOUNDED_MEANS
    assert out.count(UNBOUNDED_MEANS) == 1
    params = next(line for line in out.splitlines() if line.startswith("params"))
    assert ".0" not in params.split()[1]  # a count is an integer


def test_explain_and_max_batch_speak_json(capsys):
    assert main(["explain", "--preset", "tiny", "--batch-size", "2", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    for name, row in document["saved_activations_by_component"].items():
        assert row["exact"] == row["measured"], name
    assert document["peak_bytes"]["exact"] == document["peak_bytes"]["measured"]
    assert document["peak_bytes"]["phase"] == "optimizer"
    assert main(["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "5MB", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["max_batch"] == document["predicted"]["exact"] and document["exact_confirmed"]
    assert document["probes"] == [{"batch_size": document["max_batch"], "fits": True},
                                  {"batch_size": document["max_batch"] + 1, "fits": False}]


@pytest.mark.slow
def test_measure_fits_120_columns_unless_wide(capsys):
    assert main(["measure", "--preset", "gpt2-xl"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 120
    assert main(["measure", "--preset", "gpt2-xl", "--wide"]) == 0
    peak_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("peak_bytes"))
    assert "30.50 GiB (32.74 GB)  30.50 GiB (32.74 GB) (+0.0%)" in peak_line  # measured, then exact
