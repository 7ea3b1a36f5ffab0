"""The simulation revision: which code the traces of a derivation ran, so that programs cached by other code are
not read (a fix to the simulation changes what the traces record, and programs derived before it would keep the
old figures): they are derived again on first use."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import analytic.exact.derivation as derivation
import model
import profiler.measuring as measuring

# The code that runs when a step is traced: the model (its autocast emulation included), the measurement and the
# derivation itself.
SIMULATION_PACKAGES = (model, measuring, derivation)


def simulation_folders() -> tuple[Path, ...]:
    return tuple(Path(package.__file__).parent for package in SIMULATION_PACKAGES)


@functools.cache
def simulation_revision(folders: tuple[Path, ...] | None = None) -> str:
    """12 hex digits of a SHA-256 over the source files of `folders` (SIMULATION_PACKAGES' by default)."""
    digest = hashlib.sha256()
    for folder in folders or simulation_folders():
        for path in sorted(folder.glob("*.py")):
            digest.update(f"{folder.name}/{path.name}\n".encode() + path.read_bytes())
    return digest.hexdigest()[:12]
