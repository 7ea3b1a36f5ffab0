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


def test_a_torch_that_cannot_simulate_a_rank_leaves_the_sharded_table_as_committed(monkeypatch, capsys):
    """Before torch 2.12 no rank is simulated and no exact rank derived: the README's sharded table is left as it
    is (said on stderr) while the other generated tables are still compared."""
    import importlib.util

    from profiler.measuring import sharded

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools/readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    monkeypatch.setattr(sharded, "unsupported", lambda: "simulating shard 'fsdp2' needs torch 2.12 or newer")
    readme = (ROOT / "README.md").read_text()
    kept = readme.replace(tables.DIST_START + "\n", tables.DIST_START + "\nwhatever the README had\n")
    assert tables.rewritten(kept) == kept and tables.rewritten(readme) == readme
    assert "sharded table left as it is: simulating shard 'fsdp2' needs torch 2.12" in capsys.readouterr().err
    stale = readme.replace("([report](reports/setups-meta/report.md))", "([report](elsewhere))")
    assert tables.rewritten(stale) == readme  # the one-device tables are still made
