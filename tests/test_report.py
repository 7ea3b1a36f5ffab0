"""`profiler sweep` on a tiny meta grid writes the report: csv, markdown, plots, self-contained HTML."""
from __future__ import annotations

import pandas as pd
import pytest

from profiler import cli
from sweep_fakes import register_test_sets, write_grid

@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    register_test_sets(monkeypatch)
    # the audit beside the results answers the seeds' question for a small model (GPT-2 XL's takes a minute)
    import profiler.reporting.report as report
    import profiler.reporting.truth as truth
    from model import preset
    small = truth.PROBLEM.replace(config=preset("mini"), budget_bytes=5 * 10**7, batch_size=8)
    monkeypatch.setattr(report, "truth_blocks", lambda with_measurement=True: truth.truth_blocks(with_measurement,
                                                                                                   small))
    folder = tmp_path_factory.mktemp("sweep")
    out = folder / "out"
    status = cli.main(["sweep", "--grid", str(write_grid(folder)), "--out", str(out), "--quiet"])
    yield status, out
    monkeypatch.undo()


@pytest.mark.slow
def test_sweep_writes_every_report_file(swept):
    status, out = swept
    assert status == 0
    for name in ("results.jsonl", "results.csv", "report.md", "report.html", "meta.json", "grid.toml",
                 "plots/peak_scatter.png", "plots/error_by_axis.png", "plots/timeline.png",
                 "plots/batch_curve.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_csv_has_one_row_per_point_set_and_term(swept):
    table = pd.read_csv(swept[1] / "results.csv")
    assert set(table["formula_set"]) == {"textbook", "off"}
    assert table.groupby(["key", "formula_set", "term"]).size().max() == 1
    assert (table.loc[table["formula_set"] == "textbook", "relative_error"] == 0).all()
    off_peak = table[(table["formula_set"] == "off") & (table["term"] == "peak_bytes")]
    assert len(off_peak) == 4 and off_peak["relative_error"].between(0.0099, 0.0101).all()


@pytest.mark.slow
def test_html_is_self_contained_and_names_the_run(swept):
    page = (swept[1] / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4
    assert "src=\"plots/" not in page
    for words in ("tiny-test", "meta", "float32", "Leaderboard", "Saved activations by component",
                  "overflow-x: auto"):
        assert words in page, words
    markdown = (swept[1] / "report.md").read_text()
    assert "| formula set |" in markdown and "](plots/peak_scatter.png)" in markdown


@pytest.mark.slow
def test_report_command_regenerates(swept, capsys, monkeypatch):
    out = swept[1]
    (out / "report.html").unlink()
    register_test_sets(monkeypatch)
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and str(out / "report.html") in capsys.readouterr().out


def test_report_of_an_empty_folder_exits_2(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "holds no results" in capsys.readouterr().err
