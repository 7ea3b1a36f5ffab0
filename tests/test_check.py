"""`profiler check`: the gate passes on an exact set, fails (with a table) on one that is off, and says clearly
when the set does not exist."""
from __future__ import annotations

import json

import pytest

from profiler import cli
from sweep_fakes import register_test_sets, write_grid

SMALL_GRID = """
device = "meta"
[[points]]
preset = "tiny"
batch_sizes = [1, 2]
"""


@pytest.fixture
def gate(monkeypatch, tmp_path):
    register_test_sets(monkeypatch)
    grid = write_grid(tmp_path, SMALL_GRID)

    def run(*extra):
        return cli.main(["check", "--grid", str(grid), "--quiet", "--out", str(tmp_path / "out"), *extra])
    return run


def test_gate_passes_on_a_set_that_matches(gate, capsys):
    assert gate("--formula-set", "textbook") == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_gate_fails_on_a_set_that_is_off_and_names_points_and_terms(gate, capsys):
    assert gate("--formula-set", "off", "--tolerance", "0.001") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "tiny b=1" in out and "tiny b=2" in out and "peak_bytes" in out
    assert "phases.forward.peak_bytes" not in out  # the set is exact there
    assert max(map(len, out.splitlines())) <= 120 and ("iB (" in out)  # within 120 columns, in human units
    assert gate("--formula-set", "off", "--tolerance", "0.02") == 0  # 1 % off passes a 2 % gate


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-0.1"])
def test_a_tolerance_that_switches_the_gate_off_is_refused(gate, capsys, tolerance):
    """nan compares false with every error, inf passes every one: either would say "ok" for a set that is off."""
    assert gate("--formula-set", "off", "--tolerance", tolerance) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().count("\n") == 0 and "--tolerance must be a finite non-negative number" in err


def test_missing_formula_set_exits_2(gate, capsys):
    assert gate() == 2  # the test registry has no `exact`
    assert "formula set 'exact' does not exist" in capsys.readouterr().err


def test_gate_json_says_the_same(gate, capsys):
    """--json: one document with the verdict and the misses, the same exit code."""
    assert gate("--formula-set", "off", "--json") == 1
    document = json.loads(capsys.readouterr().out)
    assert not document["ok"] and document["points"] == 2 and document["formula_set"] == "off"
    assert {miss["point"] for miss in document["misses"]} == {"tiny b=1", "tiny b=2"}
    assert {miss["term"] for miss in document["misses"]} >= {"peak_bytes"}
    assert gate("--formula-set", "textbook", "--json") == 0
    assert json.loads(capsys.readouterr().out)["misses"] == []


def test_misses_table_keeps_each_row_whole_with_a_failed_point():
    """A point that failed to measure shows its outcome and its error (a '|' in it included) beside the misses;
    every part of the table repeats the point and the term."""
    import pandas as pd

    from profiler.commands.check import misses_table

    off = pd.DataFrame({"point": ["tiny b=1", "tiny b=2"], "term": ["peak_bytes", "error"],
                        "predicted": [2 ** 21, float("nan")], "measured": [2 ** 20, "RuntimeError: a | b"],
                        "relative error": ["+100 %", float("nan")]})
    lines = misses_table(off).splitlines()
    assert lines[0].split()[:4] == ["point", "term", "relative", "error"]
    assert "2.00 MiB (2.10 MB)" in lines[2] and "+100 %" in lines[2] and lines[3].split()[:2] == ["tiny", "b=2"]
    assert "RuntimeError: a | b" in "\n".join(lines) and max(map(len, lines)) <= 120
