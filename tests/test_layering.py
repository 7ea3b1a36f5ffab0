"""Imports point one way: commands -> experiments -> the exact model's derivation -> measuring -> reports ->
analytic -> model; no import circle anywhere; `--help` needs no torch, and what renders (profiler.reports) imports
neither torch nor what measures."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "analytic", "profiler")
# A module may import from its own layer and the layers after it in this list, never from one before it (a name
# belongs to the first layer it starts with). The experiments (sweeps, simulations, the audit's runs) measure and
# write, then render with the reports; analytic.exact.derivation traces the step (torch, the tracker of
# profiler.measuring), and the rest of analytic imports no profiler module; the reports read results and render,
# so they sit below everything that runs a step.
LAYERS = ("profiler.__main__", "profiler.cli", "profiler.commands", "profiler.experiments", "analytic.exact.derivation",
          "profiler.measuring", "profiler.reports", "profiler.errors", "analytic", "model")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imports(path: Path) -> set[str]:
    """Every project module `path` imports, at any depth of the file (function-level imports included)."""
    return {name for name in all_imports(path) if name.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a submodule's import of its own package is not an edge)."""
    modules = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    return {name: {target for target in imports(path)
                   if target in modules and target != name and not name.startswith(target + ".")}
            for name, path in modules.items()}


def layer(name: str) -> int:
    return next(i for i, prefix in enumerate(LAYERS) if name == prefix or name.startswith(prefix + "."))


def test_imports_point_one_way():
    wrong = [(source, target) for source, targets in graph().items() if source != "profiler"
             for target in targets if layer(target) < layer(source)]
    assert wrong == []


def test_no_import_circle():
    edges = {source: {t for t in targets if t != "profiler"} for source, targets in graph().items()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in edges.get(node, ()):
            assert state.get(target) != 1, " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_the_cuda_backend_imports_nothing_above_it():
    """Only the errors and the phase cutting it shares with the tracker, which import no profiler module."""
    imports = graph()
    leaves = {"profiler.errors", "profiler.measuring.phases"}
    assert {t for t in imports["profiler.measuring.cuda"] if t.startswith("profiler")} == leaves
    assert not any(t.startswith("profiler") for leaf in leaves for t in imports[leaf])


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--preset", "gpt2-xl"], ["formula", "--preset", "gpt2-xl"]],
                         ids=" ".join)
def test_commands_that_run_no_step_import_no_torch(argv):
    """The command run in process (its output discarded): it succeeds, and torch was never imported."""
    code = ("import contextlib, io, sys; from profiler.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): status = main(sys.argv[1:])\n"
            "print(status, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == ["0", "False"]


def test_the_reports_import_no_torch():
    """No module of profiler.reports imports torch, at any depth of the file (what they import in turn is held by
    the layers: nothing from measuring or experiments)."""
    importers = [module_name(path) for path in (ROOT / "profiler" / "reports").rglob("*.py")
                 if any(name.split(".")[0] == "torch" for name in all_imports(path))]
    assert importers == []


def test_the_torch_free_exact_model_never_imports_its_derivation():
    """analytic.exact's modules outside analytic.exact.derivation import neither it nor torch (the layers above
    already keep every other analytic module from importing a profiler module)."""
    imports = graph()
    free = [name for name in imports
            if name.startswith("analytic") and not name.startswith("analytic.exact.derivation")]
    assert free and not any(target.startswith("analytic.exact.derivation") for name in free for target in imports[name])
    code = "import sys, analytic.exact, analytic.exact.formula; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "False"
