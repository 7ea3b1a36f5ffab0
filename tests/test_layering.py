"""Imports point one way: commands -> reporting -> the exact model's derivation -> measuring -> analytic -> model; no
import circle anywhere, and `--help` needs no torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "analytic", "profiler")
# A module may import from its own layer and the layers after it in this list, never from one before it (a name
# belongs to the first layer it starts with). analytic.exact.derivation traces the step (torch, the tracker of
# profiler.measuring): only what is above it imports it, and the rest of analytic imports no profiler module.
LAYERS = ("profiler.__main__", "profiler.cli", "profiler.commands", "profiler.reporting", "analytic.exact.derivation",
          "profiler.measuring", "profiler.errors", "analytic", "model")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every project module `path` imports, at any depth of the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


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


def test_help_imports_no_torch():
    code = "import sys; from profiler.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "False"


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
