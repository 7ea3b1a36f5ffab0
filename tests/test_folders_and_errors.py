"""The tool never writes over what it did not write, and every bad input is one line on stderr with exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from profiler.cli import main
from profiler.experiments.sweep import run_sweep
from profiler.reports.folder import MANIFEST
from sweep_fakes import TINY_GRID, fake_measure, write_grid


def snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *words):
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_sweep_refuses_a_folder_that_holds_no_sweep(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    before = snapshot(out)
    code, stdout, err = run(capsys, "sweep", "--grid", write_grid(tmp_path), "--out", out, "--quiet")
    assert_one_line_error(code, stdout, err, "holds no sweep", "nothing was written")
    assert snapshot(out) == before


def test_sweep_refuses_a_folder_of_another_grid(tmp_path, capsys):
    other = write_grid(tmp_path, TINY_GRID.replace('name = "tiny-test"', 'name = "other"'), "other.toml")
    out = tmp_path / "other-sweep"
    run_sweep(other, out, measure_fn=fake_measure, progress=False)
    before = snapshot(out)
    code, stdout, err = run(capsys, "sweep", "--grid", write_grid(tmp_path), "--out", out, "--quiet")
    assert_one_line_error(code, stdout, err, "holds a sweep of grid other", "not of grid tiny-test")
    assert snapshot(out) == before


def test_sweep_refuses_the_same_grid_on_another_device(tmp_path, capsys):
    grid, out = write_grid(tmp_path), tmp_path / "out"
    run_sweep(grid, out, measure_fn=fake_measure, progress=False)
    before = snapshot(out)
    code, stdout, err = run(capsys, "sweep", "--grid", grid, "--device", "cpu", "--out", out, "--quiet")
    assert_one_line_error(code, stdout, err, "on meta", "on cpu")
    assert snapshot(out) == before


def test_a_sweep_folder_lists_what_the_tool_wrote(tmp_path):
    grid, out = write_grid(tmp_path), tmp_path / "out"
    run_sweep(grid, out, measure_fn=fake_measure, progress=False)
    assert json.loads((out / MANIFEST).read_text())["files"] == ["grid.toml", "meta.json", "results.jsonl"]
    assert len(run_sweep(grid, out, measure_fn=fake_measure, progress=False)) == 0  # the same grid resumes


def test_report_never_overwrites_a_file_the_tool_did_not_write(tmp_path, capsys):
    grid, out = write_grid(tmp_path), tmp_path / "out"
    run_sweep(grid, out, measure_fn=fake_measure, progress=False)
    (out / "report.md").write_text("my own report")
    before = snapshot(out)
    code, stdout, err = run(capsys, "report", out)
    assert_one_line_error(code, stdout, err, "report.md, which this tool did not write")
    assert snapshot(out) == before


def test_report_of_a_folder_whose_rows_are_not_a_sweeps_exits_2(tmp_path, capsys):
    (tmp_path / "results.jsonl").write_text('{"torch": "2.13.0", "tests_ok": true}\n')
    code, stdout, err = run(capsys, "report", tmp_path)
    assert_one_line_error(code, stdout, err, "results.jsonl:1: not a sweep's row")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.jsonl"]


def test_a_derivation_where_torch_cannot_be_imported_is_one_line():
    """predict imports no torch until the exact model must derive a program (here a sharded rank's, none shipped):
    where torch cannot be imported, that is one line and exit 2, not a traceback or a prediction left out."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from analytic.exact import source\n"
            "source.shipped().found['sharded'].clear()\n"
            "from profiler.cli import main\n"
            "sys.exit(main(['predict', '--preset', 'tiny', '--shard', 'fsdp2', '--world-size', '2']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert_one_line_error(done.returncode, done.stdout, done.stderr, "deriving them needs torch")


def test_audit_out_never_overwrites_a_file_the_tool_did_not_write(tmp_path, capsys):
    (tmp_path / "audit.md").write_text("mine")
    code, stdout, err = run(capsys, "audit", "--no-measure", "--out", tmp_path)
    assert_one_line_error(code, stdout, err, "audit.md, which this tool did not write")
    assert (tmp_path / "audit.md").read_text() == "mine" and not (tmp_path / "audit.json").exists()


def test_measure_on_cuda_without_a_gpu_names_the_command_that_works(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, stdout, err = run(capsys, "measure", "--preset", "tiny", "--device", "cuda")
    assert_one_line_error(code, stdout, err, "no CUDA GPU", "`python -m profiler measure --preset tiny --device meta`")


def test_sweep_on_cuda_without_a_gpu_names_the_grid_and_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, stdout, err = run(capsys, "sweep", "--device", "cuda", "--out", tmp_path / "x")
    assert_one_line_error(code, stdout, err, "grid gpu on cuda needs a GPU", "--device meta`")
    assert not (tmp_path / "x").exists()


def test_device_auto_measures_on_meta_without_a_gpu(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["measure", "--preset", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "meta"


def test_the_documented_entry_point():
    from model import StepSpec, preset
    from profiler import Measurement, measure

    step = measure(StepSpec(preset("tiny"), batch_size=2), device="meta")
    assert isinstance(step, Measurement) and step.device == "meta"
    assert step.measured["peak_bytes"] == max(p["peak_bytes"] for p in step.measured["phases"].values())
    assert "predicted" not in step.to_dict()  # a measurement holds what was measured, no prediction


# torch absent: no package metadata, and `import torch` fails
WITHOUT_TORCH = ("import importlib.metadata as metadata, sys\n"
                 "version = metadata.version\n"
                 "def without_torch(name):\n"
                 "    if name == 'torch':\n"
                 "        raise metadata.PackageNotFoundError(name)\n"
                 "    return version(name)\n"
                 "metadata.version = without_torch\n"
                 "sys.modules['torch'] = None\n"
                 "from profiler.cli import main\n")


def test_without_torch_the_commands_that_run_no_step_work_and_the_others_say_why():
    """predict and formula answer from the shipped programs (their figures those of the torch they were derived on);
    --help too; measure, which runs the step, is one line and exit 2."""
    def run(*argv):
        code = WITHOUT_TORCH + f"sys.exit(main({list(argv)!r}))"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)

    with_torch = subprocess.run([sys.executable, "-m", "profiler", "predict", "--preset", "tiny"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent.parent)
    for argv in (["--help"], ["formula", "--preset", "tiny"]):
        done = run(*argv)
        assert done.returncode == 0 and done.stdout and done.stderr == "", (argv, done.stderr)
    done = run("predict", "--preset", "tiny")
    assert done.returncode == 0 and done.stderr == "" and done.stdout == with_torch.stdout
    done = run("measure", "--preset", "tiny")
    assert_one_line_error(done.returncode, done.stdout, done.stderr, "needs torch")


@pytest.mark.parametrize("argv, words", [
    (["sweep", "--out", "{file}"], "--out {file} exists and is not a folder"),
    (["max-batch", "--preset", "tiny", "--plot", "{missing}/x.png"], "--plot {missing}/x.png: the folder"),
    (["measure", "--preset", "tiny", "--snapshot", "{missing}/x.pickle"], "--snapshot {missing}/x.pickle: the folder"),
    (["max-batch", "--preset", "tiny", "--plot", "{file}"], "--plot {file} exists"),
])
def test_a_path_the_command_cannot_write_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch, argv, words):
    """Checked before a step is measured (nothing is lost to a bad path): the option and the path in one line."""
    from profiler.measuring import measure

    file, missing = tmp_path / "a_file", tmp_path / "no_folder"
    file.write_text("mine\n")
    monkeypatch.setattr(measure, "measure", lambda *args, **kwargs: pytest.fail("measured before the path was checked"))
    names = {"file": str(file), "missing": str(missing)}
    code = main([part.format(**names) for part in argv])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, words.format(**names))
    assert file.read_text() == "mine\n"
