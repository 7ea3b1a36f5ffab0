"""The predict and audit commands, and bad input: exit 2, one line on stderr, no traceback."""
import gc
import json
import subprocess
import sys

import pytest

import analytic.formula_sets
from profiler.cli import main

OURS = ["analytic.textbook"] + [f"analytic.seeds.seed_{i:03d}" for i in range(5)]


@pytest.fixture
def our_sets(monkeypatch):
    """The predict table over the sets of this package (other sets are tested where they are written)."""
    monkeypatch.setattr(analytic.formula_sets, "FORMULA_SET_MODULES", OURS)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_table(capsys, our_sets):
    """The headline figures in tables of 120 columns (each starting with the figure column), every set that
    describes the setup once; the others (seed_004, of bf16 alone) named on the line after, as max-batch does."""
    code, out, err = run(capsys, "predict", "--preset", "gpt2-xl", "--batch-size", "4")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert max(map(len, lines)) <= 120
    headers = [line.split() for line in lines if line.startswith("figure ")]
    assert len(headers) > 1 and all(header[0] == "figure" for header in headers)
    assert [name for header in headers for name in header[1:]] == ["textbook", "seed_000", "seed_001", "seed_002",
                                                                    "seed_003"]
    assert lines[-1] == "  no answer (they do not describe this setup): seed_004"
    params = " ".join(line for line in lines if line.startswith("params "))
    assert "1,637,176,000" in params and "2,127,057,600" in params
    peak = next(line for line in lines if line.startswith("peak_bytes "))
    assert "GiB" in peak and "GB)" in peak
    assert any(line.startswith("flops.forward ") and "TFLOP" in line for line in lines)
    assert not any(line.startswith("saved_activations_by_component.") for line in lines)


def test_predict_wide_and_all_terms(capsys, our_sets):
    """--wide: one table however wide; --all-terms: every figure (the components' saved bytes too)."""
    code, out, _ = run(capsys, "predict", "--preset", "gpt2-xl", "--wide", "--all-terms")
    lines = out.splitlines()
    assert code == 0 and sum(line.startswith("figure ") for line in lines) == 1 and max(map(len, lines)) > 120
    assert any(line.startswith("saved_activations_by_component.softmax ") for line in lines)


def test_predict_json(capsys, our_sets):
    code, out, _ = run(capsys, "predict", "--preset", "tiny", "--batch-size", "2", "--json")
    document = json.loads(out)
    assert code == 0 and document["batch_size"] == 2 and document["config"]["name"] == "tiny"
    textbook = document["sets"]["textbook"]
    assert textbook["peak_bytes"] == sum(textbook["categories_at_peak"].values())
    assert set(document["sets"]) == {"textbook", "seed_000", "seed_001", "seed_002", "seed_003"}
    assert document["not_describing"] == ["seed_004"]


def test_predict_leaves_out_the_sets_that_do_not_describe_the_setup(capsys):
    """As measure and max-batch do (analytic.formula_sets.describes): an FSDP2 rank is answered by the exact set and
    FSDP2's closed form alone, a bf16 step by the sets of bf16, in the table and in the JSON."""
    code, out, _ = run(capsys, "predict", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "8")
    headers = [name for line in out.splitlines() if line.startswith("figure ") for name in line.split()[1:]]
    assert code == 0 and headers == ["exact", "fsdp2"]
    assert "  no answer (they do not describe this setup): textbook, seed_000" in out
    code, out, _ = run(capsys, "predict", "--preset", "tiny", "--dtype", "bfloat16", "--json")
    document = json.loads(out)
    assert list(document["sets"]) == ["textbook", "seed_004", "kaplan", "chinchilla", "palm", "exact"]
    assert "seed_000" in document["not_describing"] and "fsdp2" in document["not_describing"]
    assert not set(document["sets"]) & set(document["not_describing"])


def test_predict_sets_and_explicit_sizes(capsys, our_sets):
    code, out, _ = run(capsys, "predict", "--vocab-size", "100", "--context-length", "8", "--num-layers", "2",
                       "--d-model", "16", "--num-heads", "4", "--sets", "textbook,seed_003", "--json")
    assert code == 0 and list(json.loads(out)["sets"]) == ["textbook", "seed_003"]


def test_audit_json_is_one_document(capsys):
    code, out, err = run(capsys, "audit", "--no-measure", "--json")
    document = json.loads(out)  # the whole of stdout
    assert code == 0 and err == ""
    assert len(document["seeds"]) == 5
    for block in document["seeds"].values():
        assert {"stated", "recomputed", "flags"} <= set(block)


def test_audit_markdown_and_out(capsys, tmp_path):
    code, out, _ = run(capsys, "audit", "--no-measure", "--markdown", "--out", str(tmp_path / "audit"))
    assert code == 0 and out.startswith("# Audit")
    assert (tmp_path / "audit" / "audit.md").read_text() == out
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["seeds"]


def test_audit_prints_its_markdown_within_120_columns(capsys):
    """By default the audit's tables are split into parts that repeat the seed and the figure, and its prose is
    wrapped: every line within 120 columns, every cell and word of the Markdown still there."""
    _, markdown, _ = run(capsys, "audit", "--no-measure", "--markdown")
    code, out, _ = run(capsys, "audit", "--no-measure")
    assert code == 0 and max(map(len, out.splitlines())) <= 120 < max(map(len, markdown.splitlines()))
    cells = [cell.strip() for line in markdown.splitlines() if line.startswith("|") for cell in line.split("|")]
    assert all(cell in out for cell in cells if cell.strip("-"))
    parts = [block for block in out.split("\n\n") if block.startswith("seed ")]
    assert len(parts) >= 2 and all(part.split()[:2] == ["seed", "figure"] for part in parts)


def test_audit_json_through_the_module():
    done = subprocess.run([sys.executable, "-m", "profiler", "audit", "--no-measure", "--json"], capture_output=True,
                          text=True, check=True)
    assert "003_1da3290532807f31" in json.loads(done.stdout)["seeds"]


@pytest.mark.slow
def test_the_module_leaves_with_the_commands_code_and_its_output_flushed():
    """`python -m profiler` ends with os._exit after flushing: the whole document comes through a pipe, and the
    command's exit code is the process's."""
    done = subprocess.run([sys.executable, "-m", "profiler", "measure", "--preset", "tiny", "--device", "meta",
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["measured"]["params"] > 0
    failed = subprocess.run([sys.executable, "-m", "profiler", "measure", "--preset", "nope"], capture_output=True,
                            text=True)
    assert failed.returncode == 2 and failed.stdout == "" and failed.stderr.startswith("error: unknown preset")


@pytest.mark.slow
def test_an_attached_profiler_still_writes_its_results(tmp_path):
    """Under cProfile (or coverage, or a debugger) the module exits normally, so their exit handlers run."""
    stats = tmp_path / "predict.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "profiler", "predict", "--preset",
                    "tiny"], check=True, capture_output=True)
    assert stats.stat().st_size > 0


def test_the_collector_is_on_for_the_command_and_after(capsys, monkeypatch):
    """Imports run with the cyclic collector off (profiler.cli.import_uncollected); the command itself with it on."""
    import profiler.commands.predict as predict

    during = []
    monkeypatch.setattr(predict, "run", lambda args: during.append(gc.isenabled()) or 0)
    assert run(capsys, "predict", "--preset", "tiny")[0] == 0
    assert during == [True] and gc.isenabled()


@pytest.mark.parametrize("argv, message", [
    (["predict", "--preset", "gpt3"], "unknown preset"),
    (["predict", "--d-model", "64"], "missing --vocab-size"),
    (["predict", "--preset", "tiny", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["predict", "--preset", "tiny", "--batch-size", "-3"], "--batch-size: must be a positive integer"),
    (["predict", "--preset", "tiny", "--batch-size", "two"], "--batch-size: must be a positive integer"),
    (["predict", "--preset", "tiny", "--bogus"], "unrecognized arguments: --bogus"),
    (["measure", "--preset", "tiny", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["measure", "--preset", "tiny", "--positional", "alibi"], "invalid choice: 'alibi'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required: command"),
    (["predict", "--preset", "tiny", "--d-model", "65"], "not divisible by num_heads"),
    (["predict", "--preset", "tiny", "--num-layers", "0"], "num_layers must be positive"),
    (["predict", "--preset", "tiny", "--sets", "nope"], "unknown formula set"),
])
def test_bad_input_exits_2_with_one_line(capsys, our_sets, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert "usage:" not in err  # argparse's errors too: one line and a pointer to --help, not the whole usage


def test_audit_out_on_a_file_exits_2(capsys, tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    code, _, err = run(capsys, "audit", "--no-measure", "--out", str(path))
    assert code == 2 and "not a folder" in err and len(err.strip().splitlines()) == 1


def test_markdown_for_terminal_splits_tables_on_their_key_columns_and_wraps_items():
    from profiler.reports.tables import markdown_for_terminal

    markdown = ("# Title\n\n| seed | figure | " + " | ".join(f"set {i}" for i in range(6)) + " |\n|" + "---|" * 8
                + "\n" + "".join(f"| s{s} | {f} | " + " | ".join(f"{s}{f}{i:>12}" for i in range(6)) + " |\n"
                                 for s in range(2) for f in ("params", "peak")) + "\n- " + "word " * 30 + "\n")
    out = markdown_for_terminal(markdown, width=60)
    assert max(map(len, out.splitlines())) <= 60 and out.startswith("# Title\n\n")
    parts = [block.splitlines() for block in out.split("\n\n") if block.startswith("seed")]
    assert len(parts) == 3  # 6 columns of 14 beside the two key columns: 2 + 2 + 2
    assert all(part[0].split()[:2] == ["seed", "figure"] and len(part) == 2 + 4 for part in parts)
    assert all(f"{s}{f}{i:>12}".strip() in out for s in range(2) for f in ("params", "peak") for i in range(6))
    item = out.split("\n\n")[-1].splitlines()
    assert item[0].startswith("- word") and all(line.startswith("  word") for line in item[1:]) and len(item) > 2
    # a spaced dash that would start a continuation line goes down with the word before it
    assert markdown_for_terminal("- " + "x" * 50 + " (80 - 31.70) / 2", width=57) == \
        "- " + "x" * 50 + "\n  (80 - 31.70) / 2\n"


def test_overridden_sizes_name_what_ran(capsys):
    """A preset whose sizes or block are overridden is named with what differs, in the text and the JSON; a value
    equal to the preset's keeps its name."""
    code, out, _ = run(capsys, "predict", "--preset", "gpt2-medium", "--num-layers", "12", "--arch", "gpt2")
    assert code == 0 and out.startswith("gpt2-medium (num_layers=12, arch=gpt2): batch 1")
    code, out, _ = run(capsys, "predict", "--preset", "gpt2-medium", "--num-layers", "12", "--json")
    assert code == 0 and json.loads(out)["config"]["name"] == "gpt2-medium (num_layers=12)"
    code, out, _ = run(capsys, "predict", "--preset", "gpt2-medium", "--num-layers", "24")
    assert code == 0 and out.startswith("gpt2-medium: batch 1")


@pytest.mark.parametrize("command, instead", [
    ("measure", ", or --device cpu or cuda"),
    ("max-batch", ", or --device cuda (a GPU)"),  # max-batch refuses --device cpu
    ("explain", ""),  # explain measures on meta alone
])
def test_fused_adamw_on_meta_suggests_only_what_the_command_accepts(capsys, command, instead):
    code, out, err = run(capsys, command, "--preset", "tiny", "--optimizer", "fused", "--device", "meta") \
        if command != "explain" else run(capsys, command, "--preset", "tiny", "--optimizer", "fused")
    assert code == 2 and out == ""
    assert err == f"error: fused AdamW does not run on meta tensors; use --optimizer foreach or forloop{instead}\n"
