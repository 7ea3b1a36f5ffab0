"""The derived exact model of any model's step (analytic.exact.derivation.any_model), verified and cached.

derived_model(spec) answers from the user's cache folder (analytic.exact.versions.cache_dir()/models/, analytic.
exact.store's format) where a document for the same code is there, else derives it (seconds; one line on stderr
says so), verifies it against measure() at held-out sizes and caches it. The same code: a SHA-256 over the model's
source file (the file of FILE.py:NAME, the module of package.module:NAME, transformers' version and the config
file for hf:), the optimizer class's file, the spec's options (dtype, attention, dropout, checkpointing, autocast,
optimizer, arch, positional, zero_grad; grouped-query attention or not), the torch version, the simulation
revision (analytic.exact.derivation.revision) and the code that evaluates and verifies the programs
(analytic/exact's modules: the document records its verification).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

import torch

import analytic.exact as exact
from analytic.exact import store
from analytic.exact.derivation.any_model import derivable, derive_model, grouped_of, verify
from analytic.exact.derivation.on_demand import note
from analytic.exact.derivation.revision import simulation_revision
from analytic.exact.versions import cache_dir
from model.config import source_kind
from model.spec import StepSpec

HELD_OUT = 3  # held-out sizes a derivation is verified at
OPTIONS = ("dtype", "attention", "dropout", "checkpointing", "autocast", "optimizer", "optimizer_class", "arch",
           "positional", "zero_grad")


def source_files(reference: str) -> list[Path]:
    """The files whose text a model source or optimizer class ('FILE.py:NAME', 'package.module:NAME',
    'hf:PATH.json') is: the file, the module's file, the config file; none for hf:gpt2 and hf:llama."""
    where = reference.rpartition(":")[0] if ":" in reference else ""
    if reference.startswith("hf:"):
        return [Path(reference[3:])] if reference.endswith(".json") else []
    if where.endswith(".py"):
        return [Path(where).expanduser().resolve()]
    found = importlib.util.find_spec(where) if where else None
    return [Path(found.origin)] if found is not None and found.origin else []


def code_hash(spec: StepSpec, ones: tuple[str, ...] = ()) -> str:
    """16 hex digits of the SHA-256 over what the derived programs depend on (module docstring)."""
    digest = hashlib.sha256()
    references = [spec.model.source] + ([spec.setup.optimizer_class] if spec.setup.optimizer_class else [])
    for reference in references:
        digest.update(reference.encode())
        for path in source_files(reference):
            digest.update(path.read_bytes() if path.is_file() else b"")
    if source_kind(spec.model.source) == "hf":
        digest.update(importlib.metadata.version("transformers").encode())
    digest.update(json.dumps({**{name: spec.value(name) for name in OPTIONS}, "grouped": grouped_of(spec),
                              **({"ones": list(ones)} if ones else {})}, sort_keys=True).encode())
    digest.update(f"{torch.__version__} {simulation_revision()}".encode())
    for path in sorted(Path(exact.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_path(spec: StepSpec, ones: tuple[str, ...] = ()) -> Path:
    return cache_dir() / "models" / f"{code_hash(spec, ones)}.json.gz"


def derived_model(spec: StepSpec, quiet: bool = False, ones: tuple[str, ...] = ()) -> dict:
    """The verified document of the step of `spec` (with `ones`, of its layout class where those sizes, "B", "H",
    are 1): cached, or derived, verified at HELD_OUT sizes and cached."""
    from analytic.exact.model_programs import layout_of

    ones = layout_of(spec, ones)  # multi-query attention: its own layout class, and its own hash
    derivable(spec, ones)  # before the cache: a setup outside it (micro-batches) shares its options' hash
    path = cached_path(spec, ones)
    found = store.read(path)
    if found is not None:
        return found
    if not quiet:
        layout = f" in its layout {' and '.join(f'{name} = 1' for name in ones)}" if ones else ""
        note(f"deriving the exact model of {spec.model.source}{layout} from traces on torch {torch.__version__} "
             f"(first use; cached in {path})")
    document = derive_model(spec, ones)
    verify(document, spec, HELD_OUT)
    store.write(path, document)
    return document


_SAID: set[str] = set()


def _once(text: str) -> None:
    """One note on stderr, said once per process."""
    if text not in _SAID:
        _SAID.add(text)
        note(text)


def verified_model(spec: StepSpec) -> dict | None:
    """The exact set's document of the spec's own code (analytic.exact.ExactSet's `models`): derived_model's where
    the spec is in the domain (analytic.exact.model_programs.outside_domain; a batch of 1 and one head are their own
    layout classes, layout_ones), the derivation holds and it is exact
    at the held-out sizes; else None, and one line on stderr (once) says why: the exact set then has no answer."""
    from analytic.exact.derivation.fit import DerivationError
    from analytic.exact.model_programs import layout_ones, outside_domain

    where = f"the exact set has no answer for {spec.model.source}"
    why = outside_domain(spec)
    if why is None:
        try:
            document = derived_model(spec, ones=layout_ones(spec))
        except DerivationError as error:
            why = str(error)
        else:
            differences = document["verified"]["differences"]
            if not differences:
                return document
            why = f"its derived model is not exact at held-out sizes ({differences[0]})"
    _once(f"{where}: {why}")
    return None
