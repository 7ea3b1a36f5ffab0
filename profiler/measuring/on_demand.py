"""The exact model's programs derived on first use, on a torch the shipped programs do not hold on: one layout class
or one AdamW layout at a time, traced on meta (profiler.measuring.derive, seconds) and added to that torch's cache file,
which analytic.exact.source reads. `install()` hands the hook to analytic.exact.source; the CLI calls it.
"""
from __future__ import annotations

import functools
import sys

import torch

from analytic.exact import source
from analytic.exact.versions import cached_path
from profiler.measuring.derive import ClassKey, derive, render


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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(merged))
    return fresh[kind][key]


def cached_programs(path) -> dict:
    """{"classes": ..., "optimizers": ...} of a cache file, empty where there is none."""
    if not path.exists():
        return {"classes": {}, "optimizers": {}}
    module = source.load_file(path)
    return {"classes": dict(module.CLASSES), "optimizers": dict(module.OPTIMIZERS)}


def install(quiet: bool = False) -> None:
    """Let the exact model derive what it lacks on this torch (analytic.exact.source.DERIVE_ON_FIRST_USE); a hook
    already installed stays (the tests install a quiet one before the CLI would install its own)."""
    if source.DERIVE_ON_FIRST_USE is None:
        source.DERIVE_ON_FIRST_USE = functools.partial(derive_on_first_use, quiet=quiet)
