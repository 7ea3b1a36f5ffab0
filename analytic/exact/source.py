"""Which derived programs the exact model runs: the shipped ones (analytic/exact/derived.json.gz, derived on one
torch and holding on the others analytic.exact.versions.SHIPPED_MINORS lists), or, on any other torch, those derived
on it and cached in the user's cache folder ($XDG_CACHE_HOME or ~/.cache,
adamw-profiler/derived-torch-<version>-<simulation revision>.json.gz, analytic.exact.store's format): all of them by
`python -m profiler derive` (minutes), or class by class on first use (seconds each) where the profiler has
installed DERIVE_ON_FIRST_USE, as its CLI does. A program neither cached nor derivable here (a library user's call without the hook) is the shipped
one, and every command says which in one line (analytic.exact.versions.unverified_notice).
"""
from __future__ import annotations

import importlib.metadata
import importlib.resources
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from analytic.exact import store
from analytic.exact.versions import SHIPPED_MINORS, cached_path, minor


def installed_torch() -> str:
    """The installed torch's version, read from its metadata (importing torch here would slow `--help`)."""
    return importlib.metadata.version("torch")


def from_document(document: dict) -> SimpleNamespace:
    """CLASSES, OPTIMIZERS (keyed by tuples) and TORCH_VERSION of a programs document (analytic.exact.store)."""
    return SimpleNamespace(
        CLASSES={store.parse_key(name): data for name, data in document["classes"].items()},
        OPTIMIZERS={store.parse_key(name): data for name, data in document["optimizers"].items()},
        TORCH_VERSION=document["torch_version"])


@lru_cache(maxsize=None)
def shipped_document(name: str) -> dict:
    """A shipped programs file of the package (derived.json.gz, derived_sharded.json.gz) as its document."""
    return store.loads(importlib.resources.files("analytic.exact").joinpath(name).read_bytes())


shipped = from_document(shipped_document("derived.json.gz"))


def load(version: str | None = None) -> SimpleNamespace:
    """The programs for torch `version` (the installed one by default): the shipped ones where they were verified
    or nothing was derived."""
    version = version or installed_torch()
    path = cached_path(version)
    if minor(version) in SHIPPED_MINORS or not path.exists():
        return shipped
    return load_file(path)


def load_file(path: Path) -> SimpleNamespace:
    """A programs file as `python -m profiler derive` writes it (CLASSES, OPTIMIZERS, TORCH_VERSION); empty where
    it was written in another format."""
    document = store.read(path) or {"classes": {}, "optimizers": {}, "torch_version": None}
    return from_document(document)


# (kind, key) -> the programs of one layout class ("classes") or one AdamW layout ("optimizers") derived on the
# installed torch; set by analytic.exact.derivation.on_demand, never by analytic/ (which imports no torch).
DERIVE_ON_FIRST_USE: Callable[[str, tuple], dict[str, Any]] | None = None


class Programs(dict):
    """CLASSES or OPTIMIZERS on a torch the shipped programs do not hold on: the cached ones, and a key not cached
    derived on first use (DERIVE_ON_FIRST_USE) or, without that hook, the shipped one."""

    def __init__(self, kind: str, cached: dict, fallback: dict):
        super().__init__(cached)
        self.kind, self.fallback = kind, fallback

    def __missing__(self, key):
        if DERIVE_ON_FIRST_USE is None:
            return self.fallback[key]
        self[key] = DERIVE_ON_FIRST_USE(self.kind, key)
        return self[key]


def programs_for(version: str | None = None) -> tuple[dict, dict, str]:
    """(CLASSES, OPTIMIZERS, the torch they were derived on) for torch `version` (the installed one by default)."""
    version = version or installed_torch()
    if minor(version) in SHIPPED_MINORS:
        return shipped.CLASSES, shipped.OPTIMIZERS, shipped.TORCH_VERSION
    cached = load(version)
    own = cached is not shipped
    return (Programs("classes", cached.CLASSES if own else {}, shipped.CLASSES),
            Programs("optimizers", cached.OPTIMIZERS if own else {}, shipped.OPTIMIZERS),
            cached.TORCH_VERSION if own else version)


CLASSES, OPTIMIZERS, TORCH_VERSION = programs_for()
