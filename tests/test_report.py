"""`profiler sweep` on a tiny meta grid writes the report: csv, markdown, plots, self-contained HTML."""
from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiler import cli
from sweep_fakes import register_test_sets, write_grid

ROOT = Path(__file__).resolve().parent.parent
NO_TORCH = "import sys; sys.modules['torch'] = None; "  # then `import torch` raises ImportError


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    register_test_sets(monkeypatch)
    # the audit beside the results answers the seeds' question for a small model (GPT-2 XL's takes a minute)
    import profiler.experiments.truth as truth
    from model import preset
    small = truth.PROBLEM.replace(config=preset("mini"), budget_bytes=5 * 10**7, batch_size=8)
    monkeypatch.setattr(truth, "truth_blocks", functools.partial(truth.truth_blocks, problem=small))
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


def test_the_reports_import_where_torch_cannot():
    modules = sorted(path.stem for path in (ROOT / "profiler" / "reports").glob("*.py") if path.stem != "__init__")
    code = NO_TORCH + "import importlib; [importlib.import_module('profiler.reports.' + name) for name in sys.argv[1:]]"
    subprocess.run([sys.executable, "-c", code, *modules], check=True, cwd=ROOT)


@pytest.mark.slow
def test_a_committed_gpu_report_renders_unchanged_where_torch_cannot_be_imported(tmp_path):
    """`report DIR` on a copy of reports/gpu-cuda-h100 (its meta simulations in simulation.jsonl, no audit.json): the
    same report.md and results.csv, torch never imported."""
    committed = ROOT / "reports" / "gpu-cuda-h100"
    folder = shutil.copytree(committed, tmp_path / "gpu-cuda-h100")
    code = NO_TORCH + "from profiler.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "report", str(folder)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for name in ("report.md", "results.csv"):
        assert (folder / name).read_text() == (committed / name).read_text(), name


def test_an_unbounded_error_is_one_symbol_explained_under_its_table():
    """Over a measured 0 a relative error has no bound: '∞' in every table (measure's signed cells and the reports'
    unsigned ones alike), and the line that says so under each table that shows one, only there."""
    from profiler.reports import render
    from profiler.reports.report import with_legends
    from profiler.reports.tables import UNBOUNDED_MEANS, percent_cell, relative_cell

    assert relative_cell(float("inf")) == percent_cell(float("inf")) == "∞"
    assert (relative_cell(0.25), percent_cell(0.25)) == ("+25.0%", "25 %")
    shows = render.Table(pd.DataFrame({"set": ["textbook"], "error": [f"{percent_cell(1.5)} / ∞"]}))
    plain = render.Table(pd.DataFrame({"set": ["exact"], "error": ["0 %"]}))
    blocks = with_legends([plain, shows, render.Text("after")])
    assert blocks[:3] == [plain, shows, render.Text(UNBOUNDED_MEANS)] and blocks[3] == render.Text("after")
    assert len(blocks) == 4
