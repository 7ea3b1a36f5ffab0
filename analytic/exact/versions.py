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
    return (f"note: torch {version} is outside the range the exact model was verified on ({VERIFIED_MINORS[0]} to "
            f"{VERIFIED_MINORS[-1]}); it runs programs derived on this torch, each on first use (seconds) and "
            f"cached in {cached_path(version)} (`python -m profiler derive`: all of them, minutes); `python -m "
            f"profiler check` tells whether it holds here")
