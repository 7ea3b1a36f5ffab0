"""Which derived programs the exact model runs, passed to it explicitly as a Programs object.

The shipped programs (analytic/exact/derived.json.gz and derived_sharded.json.gz, analytic.exact.store's format)
were derived on one torch and hold on the minors analytic.exact.versions.SHIPPED_MINORS lists. On any other torch
the exact model runs programs derived on it and cached in the user's cache folder (analytic.exact.versions.
cached_path, the same format, read as data): all of them by `python -m profiler derive` (minutes), or class by
class on first use (seconds each) by a Programs that holds a `derive` callable. That callable imports torch, so
this torch-free part never builds one: analytic.exact.derivation.on_demand.deriving_programs() does (the
CLI's source).

    for_torch()                  the installed torch's: shipped, or cached; a class neither shipped nor cached
                                 raises MissingPrograms (one line) instead of answering from another torch's
    for_torch(derive=...)        the same, deriving (and caching) what is missing
    shipped()                    the shipped programs whatever the installed torch

A sharded rank's class that is neither shipped nor cached nor derivable is None: the exact set predicts no rank.
"""
from __future__ import annotations

import importlib.metadata
import importlib.resources
from functools import lru_cache
from typing import Any, Callable

from analytic.exact import store
from analytic.exact.versions import SHIPPED_MINORS, cached_path, minor
from analytic.sizes import LayoutClass, ShardedClass

SHIPPED_FILES = {"one_device": "derived.json.gz", "sharded": "derived_sharded.json.gz"}
KINDS = ("classes", "optimizers", "sharded")
# (kind, key) -> the programs of that key derived on the installed torch (None: a sharded class whose traces do
# not fit the programs' form): kind "classes" a layout class, "optimizers" an AdamW layout, "sharded" a rank's class
Derive = Callable[[str, Any], Any]


class MissingPrograms(ValueError):
    """No programs for a key on this torch: neither shipped for it, nor cached, nor derivable here."""


@lru_cache(maxsize=None)
def installed_torch() -> str | None:
    """The installed torch's version, read from its metadata (importing torch here would slow `--help`); None where
    torch is not installed."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=None)
def shipped_document(name: str) -> dict:
    """A shipped programs file of the package (SHIPPED_FILES) as its document (analytic.exact.store)."""
    return store.loads(importlib.resources.files("analytic.exact").joinpath(name).read_bytes())


class Programs:
    """The exact model's programs on one torch, by kind (KINDS) and key: a layout class (analytic.sizes.LayoutClass),
    an AdamW layout (analytic.sizes.optimizer_key), a rank's class (analytic.sizes.ShardedClass).
    `found` holds what is at hand (shipped or cached); `derive`, where given, supplies the rest and its answers
    are kept; `derived_on` is the torch the programs were derived on, `torch_version` the one they serve."""

    def __init__(self, torch_version: str, derived_on: str, found: dict[str, dict], derive: Derive | None = None,
                 missing: str = ""):
        self.torch_version, self.derived_on, self.derive, self.missing = torch_version, derived_on, derive, missing
        self.found = {kind: dict(found.get(kind, {})) for kind in KINDS}

    def _get(self, kind: str, key):
        table = self.found[kind]
        if key not in table:
            if self.derive is None:
                if kind == "sharded":
                    return None
                raise MissingPrograms(self.missing or f"no exact-model programs for {key} on torch "
                                                      f"{self.torch_version}")
            table[key] = self.derive(kind, key)
        return table[key]

    def layout_class(self, key: LayoutClass) -> dict:
        """The windows and saved_by_component of one layout class."""
        return self._get("classes", key)

    def adamw(self, key: tuple) -> dict:
        """The warm-up and steady AdamW segments of one parameter layout and implementation."""
        return self._get("optimizers", key)

    def sharded_class(self, key: ShardedClass) -> dict | None:
        """The windows of one rank's class; None where there are none here (the exact set predicts no rank)."""
        return self._get("sharded", key)


def tables(document: dict | None) -> dict[str, dict]:
    """{kind: {key tuple: programs}} of a one-device document and of a sharded one."""
    if document is None:
        return {}
    return {"classes": {LayoutClass.parse(name): data for name, data in document["classes"].items()},
            "optimizers": {store.parse_key(name): data for name, data in document["optimizers"].items()}}


def cached_sharded_classes(document: dict) -> dict:
    """{class: programs} of a cached sharded document, less the names of another version's fields (those classes are
    derived again, as programs another simulation revision cached are)."""
    classes = {}
    for name, programs in document.get("classes", {}).items():
        try:
            classes[ShardedClass.parse(name)] = programs
        except ValueError:
            continue
    return classes


@lru_cache(maxsize=None)
def shipped() -> Programs:
    """The shipped programs (whatever torch is installed: for_torch says whether they hold on it)."""
    one_device, rank = (shipped_document(name) for name in SHIPPED_FILES.values())
    found = {**tables(one_device), "sharded": {ShardedClass.parse(n): d for n, d in rank["classes"].items()}}
    return Programs(one_device["torch_version"], one_device["torch_version"], found)


def for_torch(version: str | None = None, derive: Derive | None = None, revision: str | None = None) -> Programs:
    """The programs for torch `version` (the installed one by default): the shipped ones on SHIPPED_MINORS, else
    those cached for it (`revision`, where given, must be the simulation revision the cache file records:
    programs cached by other simulation code are derived again); `derive` supplies what neither holds."""
    version = version or installed_torch()
    if version is None:  # no torch installed: the shipped programs, for the torch they were derived on
        return Programs(shipped().derived_on, shipped().derived_on, shipped().found, derive)
    if minor(version) in SHIPPED_MINORS:
        return Programs(version, shipped().derived_on, shipped().found, derive)
    cached = {kind: store.read(cached_path(version, kind)) for kind in ("derived", "sharded")}
    cached = {kind: document for kind, document in cached.items()
              if document and (revision is None or document.get("simulation_revision") == revision)}
    found = tables(cached.get("derived"))
    found["sharded"] = cached_sharded_classes(cached.get("sharded", {}))
    missing = (f"the exact model has no programs for this setup on torch {version}: the shipped ones (derived on "
               f"{shipped().derived_on}) hold on torch {', '.join(SHIPPED_MINORS)} only; derive them with `python "
               f"-m profiler derive`, or pass analytic.exact.derivation.on_demand.deriving_programs() (derives on "
               f"first use)")
    derived_on = cached["derived"]["torch_version"] if "derived" in cached else version
    return Programs(version, derived_on, found, derive, missing)


@lru_cache(maxsize=None)
def installed() -> Programs:
    """for_torch() of the installed torch, without derivation: what a library call runs unless handed Programs."""
    return for_torch(installed_torch())
