"""The exact model's programs derived on first use on the installed torch: deriving_programs(), the Programs the
profiler's commands and tests run the exact set on.

They are the installed torch's programs (analytic.exact.source.for_torch: shipped where they hold, else this
torch's cache file), and a layout class, AdamW layout or sharded rank's class they lack is traced on meta here
(analytic.exact.derivation.derive, derive_sharded: seconds each; one line on stderr says so), written to this
torch's cache file (analytic.exact.versions.cached_path, analytic.exact.store's format) with the simulation
revision that derived it (analytic.exact.derivation.revision), and kept. A cache file another revision wrote is
not read: what it held is derived again.
"""
from __future__ import annotations

import functools
import sys
import textwrap

from analytic.exact import source, store
from analytic.exact.versions import SHIPPED_MINORS, cached_path, minor
from profiler.errors import TorchUnavailableError

EMPTY = {"derived": {"classes": {}, "optimizers": {}}, "sharded": {"classes": {}}}


def _torch():
    """torch, imported when a derivation needs it (a prediction from shipped programs imports none)."""
    try:
        import torch
    except ImportError as error:
        raise TorchUnavailableError(f"the exact model needs programs that are not shipped for this torch, and "
                                    f"deriving them needs torch: {error}") from None
    return torch


def note(text: str) -> None:
    """One note on stderr, wrapped at 120 columns (continuation lines indented; a path is never split)."""
    print(textwrap.fill(f"note: {text}", 120, subsequent_indent="  ", break_long_words=False,
                        break_on_hyphens=False), file=sys.stderr)


def simulation_revision() -> str:
    """analytic.exact.derivation.revision's, imported when first needed (it imports profiler.measuring, and torch)."""
    from analytic.exact.derivation.revision import simulation_revision as revision

    return revision()


def cached(version: str, kind: str) -> dict:
    """This torch's cache document of `kind` ("derived": one device's, "sharded": a rank's) as the current
    simulation revision wrote it; an empty one where there is none or another revision wrote it."""
    found = store.read(cached_path(version, kind))
    if found is None or found.get("simulation_revision") != simulation_revision():
        return {"torch_version": version, "simulation_revision": simulation_revision(), **EMPTY[kind]}
    return found


def cached_programs(version: str) -> dict:
    """{"classes": ..., "optimizers": ...} of this torch's one-device cache file, keyed by tuples."""
    found = cached(version, "derived")
    return source.tables(found)


def derive_on_first_use(kind: str, key, quiet: bool = False) -> dict | None:
    """The programs of one layout class (kind "classes", key an analytic.sizes.LayoutClass), AdamW layout
    ("optimizers", analytic.sizes.optimizer_key) or rank's class ("sharded", an analytic.sizes.ShardedClass)
    derived on the installed torch and added to its cache file; one line on stderr says so (unless `quiet`). A
    rank's class whose traces do not fit the programs' form is None, with one line saying why (the exact set then
    predicts no rank)."""
    if kind == "sharded":
        return derive_sharded_on_first_use(key, quiet)
    if kind not in ("classes", "optimizers"):
        raise ValueError(f"kind must be classes, optimizers or sharded, got {kind!r}")
    torch = _torch()
    from analytic.exact.derivation.derive import derive
    path = cached_path(torch.__version__)
    what = key.what() if kind == "classes" else f"AdamW {key[3]} on {key[0]}, {key[1]}"
    if not quiet:
        note(f"deriving the exact model's programs for {what} on torch {torch.__version__} (first use; cached in "
             f"{path})")
    fresh = derive([key], optimizers=[]) if kind == "classes" else derive([], optimizers=[key])
    found = cached(torch.__version__, "derived")
    found[kind][store.key_name(key)] = fresh[kind][key]
    store.write(path, found)
    return fresh[kind][key]


def derive_sharded_on_first_use(key: tuple, quiet: bool = False) -> dict | None:
    """The programs of one sharded class: from this torch's cache, or derived (analytic.exact.derivation.
    derive_sharded, seconds) and cached."""
    torch = _torch()
    from analytic.exact.derivation.fit import DerivationError
    from analytic.exact.derivation.derive_sharded import derive_sharded_class

    path = cached_path(torch.__version__, "sharded")
    found = cached(torch.__version__, "sharded")
    name = store.key_name(key)
    if name not in found["classes"]:
        if not quiet:
            note(f"deriving the exact model's programs for one rank of {key.what()} on torch {torch.__version__} "
                 f"(first use; cached in {path})")
        try:
            found["classes"][name] = derive_sharded_class(key)
        except DerivationError as error:
            note(f"the exact set predicts no rank of this class: {error}")
            return None
        store.write(path, found)
    return found["classes"][name]


def deriving_programs(quiet: bool = False) -> source.Programs:
    """The installed torch's programs, deriving (and caching) on first use what they lack. Where the shipped
    programs hold, nothing here imports torch until a class must be derived (a sharded rank's, not shipped)."""
    torch = sys.modules.get("torch")
    version = torch.__version__ if torch is not None else source.installed_torch()
    revision = None if version is None or minor(version) in SHIPPED_MINORS else simulation_revision()
    return source.for_torch(version, functools.partial(derive_on_first_use, quiet=quiet), revision)
