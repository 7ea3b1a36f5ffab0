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
    """The tables of docs/ between tools/readme_tables.py's markers are its output from the committed reports."""
    done = subprocess.run([sys.executable, str(ROOT / "tools/readme_tables.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def load_tables():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools/readme_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    return tables


def test_a_stale_table_is_made_again():
    tables = load_tables()
    page = (ROOT / "docs/findings.md").read_text()
    stale = page.replace("([report](../reports/setups-meta/report.md))", "([report](elsewhere))")
    assert stale != page and tables.rewritten("findings.md", stale) == page


def test_a_torch_that_cannot_simulate_a_rank_leaves_the_sharded_table_as_committed(monkeypatch, capsys):
    """Before torch 2.12 no rank is simulated and no exact rank derived: docs/sharded.md's table is left as it is
    (said on stderr)."""
    from profiler.measuring import sharded

    tables = load_tables()
    monkeypatch.setattr(sharded, "unsupported", lambda: "simulating shard 'fsdp2' needs torch 2.12 or newer")
    page = (ROOT / "docs/sharded.md").read_text()
    kept = page.replace(tables.DIST_START + "\n", tables.DIST_START + "\nwhatever the page had\n")
    assert kept != page and tables.rewritten("sharded.md", kept) == kept
    assert "table left as it is: simulating shard 'fsdp2' needs torch 2.12" in capsys.readouterr().err


def heading_anchors(text):
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation dropped, spaces to hyphens."""
    import re

    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in text.splitlines() if line.startswith("#")}


def test_every_link_of_the_readme_and_docs_is_inside_the_repository_and_resolves():
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if re.match(r"[a-z]+:", target) or not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and anchor not in heading_anchors(resolved.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert len(pages) > 1 and not broken, broken
