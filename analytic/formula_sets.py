"""The registry of formula sets: every set of closed-form predictions the tool grades against measurement.

A formula set is a module with
    NAME: str                    short unique name ("textbook", "seed_000", ..., "exact")
    DESCRIPTION: str             one line: whose accounting it is and its main choices
    predict(spec) -> dict        figures (analytic.figures) it predicts for a model.spec.StepSpec: the model
                                 (spec.model), its training setup (spec.setup, the AdamW implementation
                                 spec.setup.optimizer included) and the batch (spec.batch_size)
and optionally max_batch_size(spec, budget_bytes) -> int (the spec's batch_size not read); without one,
max_batch_size() below solves the set's own peak, which is then linear in B, from its predictions at B = 1 and
B = 2; within(spec) -> bool, a condition on the setup that SETUP's fields cannot state (Megatron's: one
data-parallel rank, world_size = tensor_parallel), describes() then requiring both; and
A user's own set is a .py file with the same attributes (the FormulaSet protocol), named by its path wherever a
set's name is accepted (`--formula-set my_formulas.py`): load_file() imports it and checks it, with one clear
error (FormulaSetError) for what is missing or malformed; once loaded it is graded beside the built-in sets.

    SETUP: dict | list[dict]     the setup it describes, as fields of the model (model.config.ModelConfig) and
                                 of the setup (model.setup.SETUP_OPTIONS) and values, a tuple where it
                                 describes several ({"checkpointing": "none", "attention": ("explicit",
                                 "sdpa-math")}), a list of such dicts where it describes alternatives (pure bf16
                                 or bf16 autocast); a set is graded only on points of its setup (describes()).
                                 None or absent: every setup on one device. A sharded setup (shard 'fsdp2', 'ddp')
                                 only where an alternative names its shard, and tensor parallelism (t > 1, with
                                 or without sequence parallelism) only where it names tensor_parallel; ANY
                                 (model.setup's "any") as a field's value describes every value of it
                                 (tensor_parallel "any").
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import math
import numbers
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from analytic.figures import flatten, is_figure_key
from model.config import ARCH_OPTIONS, BUILTIN, POSITIONAL_OPTIONS, preset
from model.setup import ANY, OPTIONS, SETUP_OPTIONS
from model.spec import MODEL_FIELDS, StepSpec

FORMULA_SET_MODULES = [
    "analytic.textbook",
    "analytic.seeds.seed_000",
    "analytic.seeds.seed_001",
    "analytic.seeds.seed_002",
    "analytic.seeds.seed_003",
    "analytic.seeds.seed_004",
    "analytic.published.megatron",
    "analytic.published.korthikanti",
    "analytic.published.zero",
    "analytic.published.deepspeed",
    "analytic.published.accelerate",
    "analytic.published.eleuther",
    "analytic.published.kaplan",
    "analytic.published.chinchilla",
    "analytic.published.palm",
    "analytic.published.nanogpt",
    "analytic.sharding",
    "analytic.exact",
]


@runtime_checkable
class FormulaSet(Protocol):
    """What a formula set provides (SETUP and max_batch_size are optional, see the module docstring)."""

    NAME: str
    DESCRIPTION: str

    def predict(self, spec: StepSpec) -> dict[str, Any]: ...


class FormulaSetError(ValueError):
    """A user's formula file that does not follow the FormulaSet protocol."""


# Sets loaded from users' files in this process, by resolved path; they join the built-in ones.
_USER_SETS: dict[Path, ModuleType] = {}
# The exact set over the programs a caller handed in (use_exact_programs), in place of the module analytic.exact
# (which runs the installed torch's shipped or cached programs and derives none).
_EXACT: dict[str, Any] = {}
TRIAL_PRESET = "mini"  # a loaded set's predict() is tried on this model at batch 1 and 2


def is_path(name: str) -> bool:
    return name.endswith(".py") or "/" in name


def load_file(path: str | Path) -> ModuleType:
    """Import a user's formula file and check it against FormulaSet: NAME (a new, non-empty name), DESCRIPTION,
    predict(spec) returning figures under the known keys (analytic.figures), tried on the TRIAL_PRESET model,
    and a SETUP of the model's and the setup's fields. Loaded once per path; a FormulaSetError says
    what is wrong."""
    resolved = Path(path).expanduser().resolve()
    if resolved in _USER_SETS:
        return _USER_SETS[resolved]
    if resolved.is_dir():
        raise FormulaSetError(f"formula file {path} is a folder: give a .py file")
    if not resolved.is_file():
        raise FormulaSetError(f"formula file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"user_formula_set_{len(_USER_SETS)}", resolved)
    module = importlib.util.module_from_spec(spec)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what it prints on import never mixes into our output
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the user's code: whatever it raised, or its exit
        raise FormulaSetError(f"formula file {path} fails to import: {type(error).__name__}: {error}") from error
    check_protocol(module, str(path))
    _USER_SETS[resolved] = UserSet(module, str(path))
    return _USER_SETS[resolved]


def check_protocol(module: ModuleType, where: str) -> None:
    """Raise FormulaSetError naming the first way `module` breaks the FormulaSet protocol."""
    def fail(problem: str) -> None:
        raise FormulaSetError(f"formula file {where}: {problem} (see analytic.formula_sets.FormulaSet)")

    if not isinstance(module, FormulaSet):
        missing = [name for name in ("NAME", "DESCRIPTION", "predict") if not hasattr(module, name)]
        fail(f"missing {', '.join(missing)}")
    if not isinstance(module.NAME, str) or not module.NAME.strip() or is_path(module.NAME):
        fail(f"NAME must be a short name, got {module.NAME!r}")
    if module.NAME in builtin_sets() or any(other.NAME == module.NAME for other in _USER_SETS.values()):
        fail(f"NAME {module.NAME!r} is already taken by another formula set")
    if not isinstance(module.DESCRIPTION, str):
        fail("DESCRIPTION must be a string")
    try:
        inspect.signature(module.predict).bind(None)
    except (TypeError, ValueError):
        fail("predict must accept (spec), a model.spec.StepSpec")
    fields = {*MODEL_FIELDS, *OPTIONS}
    for setup in setup_alternatives(module):
        if not isinstance(setup, dict) or set(setup) - fields:
            fail(f"SETUP must be a dict (or a list of dicts) of the model's and the setup's fields "
                 f"(model.spec.StepSpec), got {setup!r}")
    for batch_size in (1, 2):
        UserSet(module, where).predict(StepSpec(preset(TRIAL_PRESET), batch_size=batch_size))


class UserSet:
    """A user's formula module whose answers are checked at every call, at every size: predict's figures must be
    known figure keys with finite non-negative numbers (a phase name for a peak_phase), max_batch_size's answer a
    non-negative integer or None. Anything else, or a raise, is one FormulaSetError naming the file, the figure and
    the point. Every other attribute is the module's."""

    def __init__(self, module: ModuleType, where: str):
        self.module, self.where = module, where
        if hasattr(module, "max_batch_size"):
            self.max_batch_size = self._max_batch_size

    def __getattr__(self, name: str):
        return getattr(self.module, name)

    def _fail(self, problem: str, spec) -> None:
        raise FormulaSetError(f"formula file {self.where}: {problem} at {spec.model.name}, batch {spec.batch_size}")

    def predict(self, spec) -> dict[str, Any]:
        try:
            figures = self.module.predict(spec)
        except Exception as error:  # noqa: BLE001 - the user's code
            self._fail(f"predict raised {type(error).__name__}: {error}", spec)
        if not isinstance(figures, dict):
            self._fail(f"predict must return a dict of figures, got {type(figures).__name__}", spec)
        for key, value in flatten(figures).items():
            if not is_figure_key(key):
                self._fail(f"predict returned {key!r}, which is no figure the tool measures (analytic.figures)", spec)
            if key.endswith("peak_phase"):
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                self._fail(f"predict returned {key} = {value!r}, not a number", spec)
            if not math.isfinite(value) or value < 0:
                self._fail(f"predict returned {key} = {value!r}, not a finite non-negative number", spec)
        return figures

    def _max_batch_size(self, spec, budget_bytes: int) -> int | None:
        try:
            answer = self.module.max_batch_size(spec, budget_bytes)
        except Exception as error:  # noqa: BLE001 - the user's code
            self._fail(f"max_batch_size raised {type(error).__name__}: {error}", spec)
        if answer is not None and (isinstance(answer, bool) or not isinstance(answer, numbers.Integral)
                                   or answer < 0):
            self._fail(f"max_batch_size returned {answer!r}, not a non-negative integer or None", spec)
        return answer


def use_exact_programs(programs, models=None) -> None:
    """From now on in this process, the exact set is analytic.exact.ExactSet(programs, models) (an analytic.exact.
    source.Programs, and a user's model's derived document, or None): the CLI hands it programs that derive what
    the installed torch lacks on first use (analytic.exact.derivation.on_demand.deriving_programs), and models
    derived on first use (analytic.exact.derivation.model_cache.verified_model)."""
    from analytic import exact

    _EXACT["exact"] = exact.ExactSet(programs, models)


def exact_set():
    """The exact set as the registry holds it (use_exact_programs; else the module analytic.exact), for callers
    that need it by itself."""
    return _EXACT.get("exact") or importlib.import_module("analytic.exact")


def builtin_sets() -> dict[str, ModuleType]:
    sets = {}
    for module_name in FORMULA_SET_MODULES:
        module = importlib.import_module(module_name)
        sets[module.NAME] = _EXACT.get(module.NAME, module)
    return sets


def formula_sets(names: list[str] | None = None) -> dict[str, ModuleType]:
    """The sets by name: the built-in ones and those loaded from users' files, all of them or `names` in that
    order; a name that is a path (ends in .py or holds a /) loads that file (load_file). A built-in set that
    fails to import is an error, never skipped."""
    for name in names or ():
        if is_path(name):
            load_file(name)
    sets = builtin_sets()
    sets.update({module.NAME: module for module in _USER_SETS.values()})
    if names is not None:
        names = [load_file(name).NAME if is_path(name) else name for name in names]
        unknown = sorted(set(names) - set(sets))
        if unknown:
            raise ValueError(f"unknown formula set(s) {', '.join(unknown)}; known: {', '.join(sets)}")
        sets = {name: sets[name] for name in names}
    return sets


def setup_alternatives(module: ModuleType) -> list[dict[str, Any]]:
    """The set's SETUP as a list of alternatives ([{}]: every setup)."""
    setup = getattr(module, "SETUP", None) or {}
    return list(setup) if isinstance(setup, (list, tuple)) else [setup]


# What an alternative that does not name a field describes, where that is not every value: one device, and no
# tensor parallelism.
UNNAMED = {"shard": "none", "tensor_parallel": 1, "sequence_parallel": False}


def declared(setup: dict[str, Any]) -> dict[str, tuple]:
    """One SETUP alternative as describes() reads it: each field's allowed values as a tuple, UNNAMED's value for
    a field it does not name ("shard" 'none': one device; tensor_parallel 1 and sequence_parallel False)."""
    named = {**setup, **{field: value for field, value in UNNAMED.items() if field not in setup}}
    return {field: value if isinstance(value, tuple) else (value,) for field, value in named.items()}


def describes(module: ModuleType, spec: StepSpec) -> bool:
    """Whether one of the set's declared SETUP alternatives matches the spec (a set without one describes
    every setup on one device; an alternative without "shard" describes one device only). A user's or Hugging
    Face model (source not 'builtin') is described by an alternative whose arch allows 'reference' (the set then
    describes "a Transformer LM of these sizes"), or its own arch (the block the user says the model has); a
    "source" field ('builtin') restricts a set to the built-in model. A set whose DERIVES_OWN_CODE is true (the
    exact set with a user's models' derivations, analytic.exact.ExactSet) describes a user's own code on one device
    whatever its SETUP (it answers where the derivation holds)."""
    if getattr(module, "DERIVES_OWN_CODE", False) and (spec.model.source != BUILTIN or spec.setup.optimizer_class):
        return spec.setup.shard == "none"

    def matches(field: str, values: tuple) -> bool:
        value = spec.value(field)
        if field == "arch" and spec.model.source != BUILTIN:
            return value in values or "reference" in values
        return value in values or ANY in values
    return any(all(matches(field, values) for field, values in declared(setup).items())
               for setup in setup_alternatives(module)) and getattr(module, "within", lambda _: True)(spec)


def describing(spec: StepSpec, names: list[str] | None = None) -> list[str]:
    """The names of the sets (all of them or `names`, in that order) that describe the spec's setup (describes):
    the sets a command answers with for that setup; the others have no answer there."""
    return [name for name, module in formula_sets(names).items() if describes(module, spec)]


# Every value of each field with a list of choices: the model's arch and positional, the setup's options (a bool
# option's two).
EVERY_VALUE = {"arch": ARCH_OPTIONS, "positional": POSITIONAL_OPTIONS,
               **{option.name: option.choices for option in SETUP_OPTIONS if option.choices},
               **{option.name: (False, True) for option in SETUP_OPTIONS if option.values is bool}}


PLAIN_WORDS = {("source", (BUILTIN,)): "the built-in model", ("optimizer_class", ("",)): "torch's AdamW"}


def setup_text(module: ModuleType) -> str:
    """The set's SETUP in words, as describes() reads it: 'dtype float32, attention explicit or sdpa-math, one
    device', alternatives joined by '; or '; a field that allows every value is left out, and a set that allows
    every value of every field describes 'every setup'."""
    def words(setup: dict) -> str:
        parts = []
        for field, values in declared(setup).items():
            if field in EVERY_VALUE and set(EVERY_VALUE[field]) <= set(values):
                continue
            if values == (ANY,):
                parts.append(f"any {field.replace('_', ' ')}")
                continue
            if field == "shard" and values == ("none",):
                parts.append("one device")
            elif field in UNNAMED and field != "shard" and values == (UNNAMED[field],):
                continue  # no tensor parallelism: what every set but one that names it describes
            elif (field, values) in PLAIN_WORDS:
                parts.append(PLAIN_WORDS[field, values])
            else:
                parts.append(f"{field} {' or '.join(map(str, values))}")
        return ", ".join(parts) or "every setup"
    return "; or ".join(words(setup) for setup in setup_alternatives(module))


def predict(spec: StepSpec, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every formula set's figures for one step spec, by set name."""
    if spec.batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {spec.batch_size}")
    return {name: module.predict(spec) for name, module in formula_sets(names).items()}


def max_batch_size(module: ModuleType, spec: StepSpec, budget_bytes: int) -> int | None:
    """The largest batch whose peak the formula set predicts within budget_bytes; None if it predicts no peak.

    A set with its own max_batch_size answers itself. Otherwise its peak must be a·B + b (the textbook and the
    seed answers are): a = peak(2) - peak(1), b = peak(1) - a, and B = floor((budget - b) / a), 0 if B = 1
    does not fit.
    """
    own = getattr(module, "max_batch_size", None)
    if own is not None:
        return own(spec, budget_bytes)
    one = module.predict(spec.replace(batch_size=1)).get("peak_bytes")
    if one is None:
        return None
    slope = module.predict(spec.replace(batch_size=2))["peak_bytes"] - one
    if slope <= 0:
        raise ValueError(f"formula set {module.NAME} predicts a peak that does not grow with the batch")
    return max(0, int((budget_bytes - (one - slope)) // slope))


def max_batch_sizes(spec: StepSpec, budget_bytes: int) -> dict[str, int | None]:
    """Every set's predicted maximum batch (max_batch_size above), None where a set does not describe the setup,
    predicts no peak or the configuration is outside its domain (the exact set: autocast, context length 1)."""
    predictions: dict[str, int | None] = {}
    for name, module in formula_sets().items():
        if not describes(module, spec):
            predictions[name] = None
            continue
        try:
            predictions[name] = max_batch_size(module, spec, budget_bytes)
        except FormulaSetError:  # a user's set that broke the protocol here: said, never an empty cell
            raise
        except ValueError:
            predictions[name] = None
    return predictions
