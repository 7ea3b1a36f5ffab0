"""The torch versions the exact model is known to hold on, and with which programs.

Its programs were derived from traces of the step on one torch (analytic/exact/derived.py's TORCH_VERSION) and
are shipped for the minors where they hold (SHIPPED_MINORS); a torch release can change what autograd saves or
what a kernel allocates, so on any other torch the exact model runs programs derived on it (analytic.exact.source:
class by class on first use, cached). The model is claimed only where it was verified (VERIFIED_MINORS): the whole
test suite (every setup exact to the byte on random sizes) and the `check` gate passed there, each version in its
own environment with the project installed beside it (tools/torch_compat.py; its table is
reports/torch-compat/README.md, and a test ties both tuples to it).
"""
from __future__ import annotations

import os
from pathlib import Path


SHIPPED_MINORS = ("2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14")  # the shipped programs hold
VERIFIED_MINORS = SHIPPED_MINORS  # tests and check pass (elsewhere with programs derived on it)


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
    """One line for a torch the shipped programs do not hold on (None where they do): which programs the exact
    model runs there, and whether that was verified."""
    if minor(version) in SHIPPED_MINORS:
        return None
    verified = (f"verified on {minor(version)}" if minor(version) in VERIFIED_MINORS else
                f"not verified on {minor(version)} (verified: {VERIFIED_MINORS[0]} to {VERIFIED_MINORS[-1]})")
    return (f"note: on torch {version} the exact model runs programs derived on it, each on first use (seconds), "
            f"cached in {cached_path(version)} (`python -m profiler derive`: all of them, minutes); {verified}; "
            f"`python -m profiler check` tells whether it holds here")
