"""The torch versions the exact model is known to hold on.

Its programs were derived from traces of the step on one torch (analytic/exact/derived.py's TORCH_VERSION); a
torch release can change what autograd saves or what a kernel allocates, so the model is claimed only where it
was verified: the whole test suite (every setup exact to the byte on random sizes) and the `check` gate passed
there, each version in its own environment with the project installed beside it
(tools/torch_compat.py; its table is reports/torch-compat/README.md, and a test ties this tuple to it).
"""
from __future__ import annotations

import os
from pathlib import Path

from analytic.exact.derived import TORCH_VERSION

VERIFIED_MINORS = ("2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14")


def minor(version: str) -> str:
    """'2.13' of '2.13.0+cpu'."""
    return ".".join(version.split("+")[0].split(".")[:2])


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adamw-profiler"


def cached_path(version: str) -> Path:
    """Where `python -m profiler derive` puts the programs derived on torch `version` (analytic.exact.source
    reads them there), keyed by the release without its local build tag ('2.15.0' of '2.15.0+cu130': the
    package metadata's version and torch.__version__ can differ in it)."""
    return cache_dir() / f"derived-torch-{version.split('+')[0]}.py"


def unverified_notice(version: str) -> str | None:
    """One line for a torch the exact model was not verified on (None where it was): which programs it runs."""
    if minor(version) in VERIFIED_MINORS:
        return None
    if cached_path(version).exists():
        return (f"note: torch {version} is outside the verified range {VERIFIED_MINORS[0]} to "
                f"{VERIFIED_MINORS[-1]}; the exact model runs the programs derived on it ({cached_path(version)})")
    return (f"note: the exact model was derived on torch {TORCH_VERSION} and verified on "
            f"{VERIFIED_MINORS[0]} to {VERIFIED_MINORS[-1]}, not on {version}; `python -m profiler check` tells "
            f"whether it holds here, `python -m profiler derive` derives its programs on this torch (minutes)")
