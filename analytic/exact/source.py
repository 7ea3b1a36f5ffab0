"""Which derived programs the exact model runs: the shipped ones (analytic/exact/derived.py, derived on one torch
and verified on the others analytic.exact.versions lists), or, on a torch outside that range, those that
`python -m profiler derive` derived on it and cached in the user's cache folder ($XDG_CACHE_HOME or ~/.cache,
adamw-profiler/derived-torch-<version>.py). Without such a cache the shipped programs are used, and every command
says so in one line (analytic.exact.versions.unverified_notice).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from types import ModuleType

from analytic.exact import derived as shipped
from analytic.exact.versions import VERIFIED_MINORS, cached_path, minor


def installed_torch() -> str:
    """The installed torch's version, read from its metadata (importing torch here would slow `--help`)."""
    return importlib.metadata.version("torch")


def load(version: str | None = None) -> ModuleType:
    """The programs for torch `version` (the installed one by default): the shipped ones where they were verified
    or nothing was derived."""
    version = version or installed_torch()
    path = cached_path(version)
    if minor(version) in VERIFIED_MINORS or not path.exists():
        return shipped
    spec = importlib.util.spec_from_file_location(f"adamw_profiler_derived_{minor(version).replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


programs = load()
CLASSES, OPTIMIZERS, TORCH_VERSION = programs.CLASSES, programs.OPTIMIZERS, programs.TORCH_VERSION
