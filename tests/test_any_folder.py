"""`python -m profiler` run from a user's project folder, which has its own model.py and analytic/ package (both
raise on import here): the CLI imports this project's packages, never the folder's, and prints what it prints
anywhere else. The `adamw-profiler` script likewise."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def user_project(tmp_path):
    (tmp_path / "model.py").write_text('raise RuntimeError("the user\'s model.py was imported")\n')
    (tmp_path / "analytic").mkdir()
    (tmp_path / "analytic" / "__init__.py").write_text('raise RuntimeError("the user\'s analytic/ was imported")\n')
    return tmp_path


def run_in(folder: Path, *command: str) -> subprocess.CompletedProcess:
    """`command` run in `folder` with this checkout's packages importable (ahead of an installed copy of them)."""
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                                     os.environ.get("PYTHONPATH")]))}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)


def in_process(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "120")
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [["predict", "--preset", "tiny"], ["--help"]])
def test_the_module_ignores_the_current_folders_model_and_analytic(user_project, capsys, monkeypatch, argv):
    done = run_in(user_project, sys.executable, "-m", "profiler", *argv)
    assert done.returncode == 0, done.stderr
    assert "RuntimeError" not in done.stderr and done.stdout == in_process(capsys, monkeypatch, *argv)


@pytest.mark.slow
def test_the_script_ignores_the_current_folders_model_and_analytic(user_project, capsys, monkeypatch):
    script = Path(sys.executable).parent / "adamw-profiler"
    if not script.exists():
        pytest.skip("the adamw-profiler script is not installed beside this Python")
    done = run_in(user_project, str(script), "predict", "--preset", "tiny")
    assert done.returncode == 0, done.stderr
    assert done.stdout == in_process(capsys, monkeypatch, "predict", "--preset", "tiny")
