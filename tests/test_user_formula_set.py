"""A user's own formula file (`--formula-set my_formulas.py`): checked on load against the FormulaSet protocol
with one clear error, then graded end to end like a built-in set: a deliberately wrong formula fails the gate on
the terms it gets wrong, and shows in the report's leaderboard."""
from __future__ import annotations

import json
import textwrap

import pytest

import analytic.formula_sets as registry
from analytic.formula_sets import FormulaSetError, load_file
from profiler import cli
from profiler.reports.report import comparison, leaderboard, with_predictions
from profiler.reports.results import read_results

GRID = """
device = "meta"
[[points]]
preset = "tiny"
batch_sizes = [1, 2]
"""

# Right about parameters, gradients and AdamW's two moments, wrong to stop there: no activations, no temporaries.
WRONG = """
from analytic.params import parameter_count

NAME = "sixteen_bytes"
DESCRIPTION = "4 copies of every fp32 parameter (weights, gradients, two moments) and nothing else"
SETUP = {"dtype": "float32", "autocast": "none"}

def predict(spec):
    n = parameter_count(spec.model)
    return {"params": n, "peak_bytes": 16 * n, "categories_at_peak": {"parameters": 4 * n, "gradients": 4 * n,
            "optimizer_state": 8 * n, "saved_activations": 0}}
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "_USER_SETS", {})


def write(tmp_path, text: str, name: str = "my_formulas.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_wrong_user_formula_is_graded_end_to_end(tmp_path, capsys):
    formula, grid, out = write(tmp_path, WRONG), write(tmp_path, GRID, "grid.toml"), tmp_path / "out"
    assert cli.main(["check", "--grid", str(grid), "--quiet", "--out", str(out), "--formula-set", str(formula)]) == 1
    printed = capsys.readouterr().out
    assert "FAIL: formula set sixteen_bytes" in printed and "peak_bytes" in printed
    assert "categories_at_peak.parameters" not in printed  # the parameters are right: 4 bytes each
    board = leaderboard(comparison(with_predictions(read_results(out))))
    mine = board.set_index("formula set").loc["sixteen_bytes"]
    assert mine["points"] == 2 and mine["peak median"] > 0.1  # far below the measured peak


def test_the_right_formula_from_a_file_passes_the_gate(tmp_path, capsys):
    formula = write(tmp_path, """
        from analytic import exact
        NAME, DESCRIPTION = "mine_exact", "the exact set, from a user's file"
        def predict(spec):
            return exact.predict(spec)
        """)
    grid = write(tmp_path, GRID, "grid.toml")
    assert cli.main(["check", "--grid", str(grid), "--quiet", "--out", str(tmp_path / "o"),
                     "--formula-set", str(formula)]) == 0
    assert capsys.readouterr().out.startswith("ok: formula set mine_exact")


@pytest.mark.parametrize("text, problem", [
    ("DESCRIPTION = 'x'\ndef predict(spec): return {}", "missing NAME"),
    ("NAME = 'a'\nDESCRIPTION = 'x'", "missing predict"),
    ("NAME = 'exact'\nDESCRIPTION = 'x'\ndef predict(spec): return {}",
     "already taken"),
    ("NAME = 'a'\nDESCRIPTION = 'x'\ndef predict(config, batch_size): return {}", "must accept (spec"),
    ("NAME = 'a'\nDESCRIPTION = 'x'\ndef predict(spec): return {'peak': 1}",
     "'peak', which is no figure"),
    ("NAME = 'a'\nDESCRIPTION = 'x'\ndef predict(spec): "
     "return {'peak_bytes': 'big'}", "not a number"),
    ("NAME = 'a'\nDESCRIPTION = 'x'\nSETUP = {'precision': 'fp16'}\n"
     "def predict(spec): return {}", "SETUP must be"),
    ("NAME = 'a'\nDESCRIPTION = 'x'\ndef predict(spec): return 1 / 0",
     "raised ZeroDivisionError"),
    ("import no_such_module", "fails to import: ModuleNotFoundError"),
])
def test_a_file_breaking_the_protocol_is_refused_with_one_clear_line(tmp_path, text, problem):
    with pytest.raises(FormulaSetError, match="my_formulas.py.*" + problem.replace("(", r"\(")):
        load_file(write(tmp_path, text))


def test_the_cli_refuses_a_bad_file_in_one_line(tmp_path, capsys):
    path = write(tmp_path, "NAME = 'a'\n")
    assert cli.main(["predict", "--preset", "tiny", "--formula-set", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing DESCRIPTION, predict" in err
    assert cli.main(["predict", "--preset", "tiny", "--formula-set", str(tmp_path / "none.py")]) == 2
    assert "does not exist" in capsys.readouterr().err


# Right on the trial model (mini), wrong at GPT-2 XL's size in one way each: checked at every call, not at load only.
AT_SIZE = """
NAME, DESCRIPTION = "at_size", "right on a small model, wrong at GPT-2 XL's"
def predict(spec):
    value = {value} if spec.model.num_layers == 48 else 1
    return {{"params": 1, "peak_bytes": value}}
"""


@pytest.mark.parametrize("value, problem", [("'big'", "= 'big', not a number"), ("float('nan')", "nan, not a finite"),
                                            ("float('inf')", "inf, not a finite"), ("-5", "-5, not a finite"),
                                            ("1 // 0", "raised ZeroDivisionError")])
def test_a_set_is_checked_at_every_call_in_one_line(tmp_path, capsys, value, problem):
    path = write(tmp_path, AT_SIZE.format(value=value))
    for command in (["predict"], ["max-batch", "--budget", "80GB", "--device", "meta"]):
        assert cli.main([*command, "--preset", "gpt2-xl", "--formula-set", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "my_formulas.py" in err and problem in err, err
        assert "gpt2-xl, batch" in err


def test_a_file_that_exits_or_prints_on_import(tmp_path, capsys):
    path = write(tmp_path, "import sys\nsys.exit(0)\n")
    assert cli.main(["predict", "--preset", "tiny", "--formula-set", str(path)]) == 2
    assert "fails to import: SystemExit" in capsys.readouterr().err
    printing = write(tmp_path, "print('hello')\nNAME, DESCRIPTION = 'loud', 'x'\n"
                               "def predict(spec): return {'params': 1}\n", "loud.py")
    assert cli.main(["predict", "--preset", "tiny", "--formula-set", str(printing), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "hello" in err and "hello" not in out and json.loads(out)["sets"]["loud"]["params"] == 1
