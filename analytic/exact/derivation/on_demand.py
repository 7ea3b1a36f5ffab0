"""The exact model's programs derived on first use, on a torch the shipped programs do not hold on: one layout class
or one AdamW layout at a time, traced on meta (analytic.exact.derivation.derive, seconds) and added to that torch's cache file,
which analytic.exact.source reads. `install()` hands the hook to analytic.exact.source; the CLI calls it. A sharded
rank's programs (analytic.exact.sharded) are derived on first use on every torch (`install_sharded()`).
"""
from __future__ import annotations

import functools
import sys

import torch

from analytic.exact import sharded, source, store
from analytic.exact.versions import cached_path
from analytic.exact.derivation.derive import ClassKey, DerivationError, derive, document
from analytic.exact.derivation.derive_sharded import derive_sharded_class


def derive_on_first_use(kind: str, key: tuple, quiet: bool = False) -> dict:
    """The programs of one class (kind "classes", key a ClassKey.key()) or AdamW layout (kind "optimizers", key
    analytic.sizes.optimizer_key) derived on the installed torch and written into its cache file beside what is
    there; one line on stderr says so (unless `quiet`)."""
    if kind not in ("classes", "optimizers"):
        raise ValueError(f"kind must be classes or optimizers, got {kind!r}")
    path = cached_path(torch.__version__)
    what = ClassKey(*key).what() if kind == "classes" else f"AdamW {key[3]} on {key[0]}, {key[1]}"
    if not quiet:
        print(f"note: deriving the exact model's programs for {what} on torch {torch.__version__} (first use; "
              f"cached in {path})", file=sys.stderr)
    fresh = derive([ClassKey(*key)], optimizers=[]) if kind == "classes" else derive([], optimizers=[key])
    merged = cached_programs(path)
    merged[kind].update(fresh[kind])
    store.write(path, document(merged))
    return fresh[kind][key]


def cached_programs(path) -> dict:
    """{"classes": ..., "optimizers": ...} of a cache file (keyed by tuples), empty where there is none."""
    cached = source.load_file(path)
    return {"classes": dict(cached.CLASSES), "optimizers": dict(cached.OPTIMIZERS)}


def install(quiet: bool = False) -> None:
    """Let the exact model derive what it lacks on this torch (analytic.exact.source.DERIVE_ON_FIRST_USE); a hook
    already installed stays (the tests install a quiet one before the CLI would install its own)."""
    if source.DERIVE_ON_FIRST_USE is None:
        source.DERIVE_ON_FIRST_USE = functools.partial(derive_on_first_use, quiet=quiet)


def derive_sharded_on_first_use(key: tuple, quiet: bool = False) -> dict | None:
    """The programs of one sharded class (analytic.exact.sharded.sharded_class_key): from this torch's cache, or
    derived (analytic.exact.derivation.derive_sharded, seconds; one line on stderr unless `quiet`) and cached; None, with
    one line saying why, where the traces do not fit the programs' form (the exact set then predicts no rank)."""
    path = cached_path(torch.__version__, "sharded")
    # a file of another format (a release with other symbols or grammar) is derived again
    cache = store.read(path) or {"torch_version": torch.__version__, "classes": {}}
    cached, name = cache["classes"], sharded.class_name(key)
    if name not in cached:
        if not quiet:
            print(f"note: deriving the exact model's programs for one rank of {key[-3]} ({', '.join(map(str, key))}) "
                  f"on torch {torch.__version__} (first use; cached in {path})", file=sys.stderr)
        try:
            cached[name] = derive_sharded_class(key)
        except DerivationError as error:
            print(f"note: the exact set predicts no rank of this class: {error}", file=sys.stderr)
            return None
        store.write(path, cache)
    return cached[name]


def install_sharded(quiet: bool = False) -> None:
    """Let the exact model derive a sharded class on first use (analytic.exact.sharded.DERIVE_ON_FIRST_USE), on
    every torch: programs are shipped for a few classes on the torch of analytic/exact/derived.json.gz only."""
    if sharded.DERIVE_ON_FIRST_USE is None:
        sharded.DERIVE_ON_FIRST_USE = functools.partial(derive_sharded_on_first_use, quiet=quiet)
