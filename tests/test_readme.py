import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_command(which):
    return subprocess.run([sys.executable, str(ROOT / ".ci/readme_commands.py"), which], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_quickstart_has_two_lines_that_pin_torch_first():
    main, test = readme_command("main"), readme_command("test")
    for line in (main, test):
        assert line.startswith("pip install torch==2.13.0 && pip install -e ")
    assert main.endswith("python -m profiler sweep")
    assert "python -m pytest -q" in test and test.endswith("python -m profiler check")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert "readme_commands.py test" in ci and 'eval "$test_command"' in ci


def test_generated_tables_are_what_the_committed_reports_give():
    """The README's "max batch per setup" table is tools/readme_tables.py's output from reports/setups-meta."""
    done = subprocess.run([sys.executable, str(ROOT / "tools/readme_tables.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
