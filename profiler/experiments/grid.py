"""Sweep grids: a TOML file read strictly, expanded into measurement points with stable keys.

A grid file (profiler/experiments/grids/<name>.toml, or any path):

    name = "ci"                      # optional; defaults to the file's stem
    description = "one line"         # optional
    device = "meta"                  # default device: meta | cpu | cuda
    optimizers = ["foreach"]         # AdamW implementations measured at every base and axis point
    max_batch_budget = "80GB"        # optional: also measure each point's largest batch in this budget

    [base]                           # the configuration every axis varies around
    preset = "mini"                  # optional; any field of the model or the setup overrides it
    batch_size = 2                   # the base batch size

    [axes]                           # one axis varied at a time, every other size kept at the base
    batch_size = [1, 2, 4]
    context_length = [32, 64]        # also d_model, num_layers, num_heads, vocab_size
    checkpointing = ["full"]         # option axes: checkpointing (none, full, selective), zero_grad (none, zeros),
    attention = ["sdpa-math"]        # attention (explicit, sdpa-math, sdpa-flash, sdpa-efficient), autocast (none,
                                     # bfloat16: mixed precision over float32 parameters)
    micro_batches = [2]              # gradient accumulation (each must divide the base batch size)
    shard = ["fsdp2", "ddp"]         # data parallelism over the base's world_size ranks (none, fsdp2, ddp)
    world_size = [8, 64]             # ranks, around a sharded base
    tensor_parallel = [2, 8]         # tensor parallelism over t of them, around an FSDP2 base (sequence_parallel:
                                     # [true] splits the sequence too)
    arch = ["gpt2", "llama"]         # the block (reference, gpt2, llama), with that arch's own defaults

    [[points]]                       # a user's implementation: `model` as --model takes it (FILE.py:NAME, a path
    preset = "hf-gpt2"               # from the current folder; package.module:NAME; hf:gpt2, hf:llama), and
    model = "hf:gpt2"                # optimizer_class = "FILE.py:NAME" for a user's optimizer

    [[points]]                       # explicit extra points
    preset = "gpt2-xl"               # and/or fields of the model and the setup
    batch_sizes = [1]
    optimizers = ["foreach"]         # optional; defaults to the grid's list

The keys of the model are model.config.ModelConfig's fields, those of the setup (and the option axes) are
model.setup.SETUP_OPTIONS' (the optimizer apart: `optimizers`). Every mistake (an unknown key, a bad value, a
size the model rejects) raises GridError naming the file, the key and the problem, before anything is measured or
written.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytic.units import parse_bytes
from model.config import ARCH_OPTIONS, BUILTIN, PRESETS, source_arch
from model.setup import SETUP_OPTIONS
from model.spec import MODEL_FIELDS, StepSpec
from model.vocabulary import DEVICES, OPTIMIZERS

GRID_DIR = Path(__file__).parent / "grids"
# The setup's options but the optimizer (a grid's `optimizers`): integer ones are axes of numbers, the others
# axes of names.
GRID_OPTIONS = tuple(option for option in SETUP_OPTIONS if option.name != "optimizer")
AXES = ("batch_size", "context_length", "d_model", "num_layers", "num_heads", "vocab_size",
        *(option.name for option in GRID_OPTIONS if option.values is int))
OPTION_AXES = {"arch": ARCH_OPTIONS, **{option.name: option.choices for option in GRID_OPTIONS if option.choices}}
# A grid names the model's source `model`, as the CLI's --model does.
CONFIG_FIELDS = tuple("model" if name == "source" else name for name in MODEL_FIELDS) + tuple(
    option.name for option in GRID_OPTIONS)
TOP_KEYS = ("name", "description", "device", "optimizers", "max_batch_budget", "base", "axes", "points")
BASE_KEYS = ("preset", "batch_size") + CONFIG_FIELDS
POINT_KEYS = ("preset", "batch_sizes", "optimizers") + CONFIG_FIELDS


class GridError(ValueError):
    """A grid file that cannot be used; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Point:
    key: str                  # stable: the same step spec (model, setup with its optimizer, batch) and device give
                              # the same key
    spec: StepSpec
    device: str
    axes: tuple[str, ...]     # the swept axes this point lies on ("base" lies on all of them); () for extras
    label: str


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    source: Path
    text: str                 # the file as read, copied next to the results
    device: str
    optimizers: tuple[str, ...]
    base: StepSpec | None     # at the base batch size
    axes: dict[str, tuple[int, ...]]
    extras: tuple[tuple[StepSpec, tuple[int, ...], tuple[str, ...]], ...]
    max_batch_budget: str | None = None  # a budget with its unit ("80GB"): measure each point's max batch too


def grid_path(name_or_path: str | Path) -> Path:
    """A shipped grid's name ("ci") or a path to a .toml file."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
    else:
        path = GRID_DIR / f"{text}.toml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in GRID_DIR.glob("*.toml")))
            raise GridError(f"unknown grid {text!r}; shipped grids: {known} (or give a path to a .toml file)")
    if not path.exists():
        raise GridError(f"grid file {path} does not exist")
    if path.is_dir():
        raise GridError(f"grid {path} is a folder: give a .toml file")
    return path


def load_grid(name_or_path: str | Path) -> Grid:
    path = grid_path(name_or_path)
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"grid {path}: not valid TOML: {error}") from None
    return _parse(data, path, text)


def _fail(path: Path, key: str, problem: str) -> GridError:
    return GridError(f"grid {path}: {key}: {problem}")


def _check_keys(path: Path, table: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(table, dict):
        raise _fail(path, where or "(top level)", f"must be a table, got {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}" if where else key, f"unknown key; known: {', '.join(allowed)}")


def _positive_ints(path: Path, key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, key, f"must be a non-empty list of positive integers, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise _fail(path, key, f"must hold positive integers only, got {item!r}")
    return tuple(value)


def _options(path: Path, key: str, value: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(item not in known for item in value):
        raise _fail(path, key, f"must be a non-empty list of some of {', '.join(known)}, got {value!r}")
    return tuple(value)


def _optimizers(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, key, f"must be a non-empty list, some of {OPTIMIZERS}, got {value!r}")
    for item in value:
        if item not in OPTIMIZERS:
            raise _fail(path, key, f"unknown optimizer {item!r}; known: "
                                   f"{', '.join(OPTIMIZERS)}")
    return tuple(value)


def _spec(path: Path, where: str, table: dict[str, Any]) -> StepSpec:
    """A step spec (at batch 1) from `preset` and/or fields; the model's and the setup's own checks name the
    problem."""
    fields = {"source" if k == "model" else k: v for k, v in table.items() if k in CONFIG_FIELDS}
    if "source" in fields and source_arch(fields["source"]) is not None:
        fields.setdefault("arch", source_arch(fields["source"]))
    name = table.get("preset")
    if fields.get("source", BUILTIN) != BUILTIN:  # named for the implementation, as it runs beside others
        fields.setdefault("name", f"{name or 'custom'} ({fields['source']})")
    try:
        if name is not None:
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
            return StepSpec(PRESETS[name]).replace(**fields)
        return StepSpec.of(**fields)
    except (TypeError, ValueError) as error:
        raise _fail(path, where, str(error)) from None


def vary(base: StepSpec, axis: str, value: int) -> StepSpec:
    """The base with one size or option changed and named after it; d_ff follows d_model unless the base fixed
    it."""
    changes = {axis: value, "name": f"{base.model.name}:{axis}={value}"}
    if axis == "d_model" and base.model.d_ff == 4 * base.model.d_model:
        changes["d_ff"] = 4 * value
    return base.replace(**changes)


def _parse(data: dict[str, Any], path: Path, text: str) -> Grid:
    _check_keys(path, data, TOP_KEYS, "")
    device = data.get("device", "meta")
    if device not in DEVICES:
        raise _fail(path, "device", f"must be one of {', '.join(DEVICES)}, got {device!r}")
    optimizers = _optimizers(path, "optimizers", data.get("optimizers", ["foreach"]))
    for key in ("name", "description", "max_batch_budget"):
        if not isinstance(data.get(key, ""), str):
            raise _fail(path, key, f"must be a string, got {data[key]!r}")
    budget = data.get("max_batch_budget")
    if budget is not None:
        try:
            parse_bytes(budget)
        except ValueError as error:
            raise _fail(path, "max_batch_budget", str(error)) from None

    base = None
    axes: dict[str, tuple[int, ...]] = {}
    if "base" in data:
        _check_keys(path, data["base"], BASE_KEYS, "base")
        base = _spec(path, "base", data["base"]).replace(
            batch_size=_positive_ints(path, "base.batch_size", [data["base"].get("batch_size", 1)])[0])
    if "axes" in data:
        if base is None:
            raise _fail(path, "axes", "needs a [base] table to vary around")
        _check_keys(path, data["axes"], AXES + tuple(OPTION_AXES), "axes")
        for axis, values in data["axes"].items():
            axes[axis] = (_options(path, f"axes.{axis}", values, OPTION_AXES[axis]) if axis in OPTION_AXES
                          else _positive_ints(path, f"axes.{axis}", values))
            for index, value in enumerate(axes[axis]):
                try:
                    point = base.replace(batch_size=value) if axis == "batch_size" else vary(base, axis, value)
                    point.micro_batch_size
                except ValueError as error:
                    raise _fail(path, f"axes.{axis}[{index}] = {value}", str(error)) from None

    extras = []
    points = data.get("points", [])
    if not isinstance(points, list):
        raise _fail(path, "points", "must be an array of tables ([[points]])")
    for index, table in enumerate(points):
        where = f"points[{index}]"
        _check_keys(path, table, POINT_KEYS, where)
        spec = _spec(path, where, table)
        batches = _positive_ints(path, f"{where}.batch_sizes", table.get("batch_sizes", [1]))
        for batch in batches:
            try:
                spec.replace(batch_size=batch).micro_batch_size
            except ValueError as error:
                raise _fail(path, f"{where}.batch_sizes", str(error)) from None
        extras.append((spec, batches,
                       _optimizers(path, f"{where}.optimizers", table.get("optimizers", list(optimizers)))))
    if base is None and not extras:
        raise _fail(path, "(top level)", "defines no points: give a [base] table or [[points]]")
    return Grid(name=data.get("name", path.stem), description=data.get("description", ""), source=path,
                text=text, device=device, optimizers=optimizers, base=base, axes=axes,
                extras=tuple(extras), max_batch_budget=budget)


def point_key(spec: StepSpec, device: str) -> str:
    """Stable and readable: every size and option of the model (not its name) and of the setup, the batch,
    optimizer (the user's optimizer class where one is given) and device; the model's source first unless it is
    the built-in model, then the arch unless it is the reference block (gpt2 with its dropout, llama with its
    key/value heads)."""
    c, s = spec.model, spec.setup
    arch = {"reference": "", "gpt2": f"gpt2-p{c.dropout:g}-", "llama": f"llama-G{c.kv_heads}-"}[c.arch]
    setup = "".join(part for default, part in ((s.autocast == "none", f"-amp-{s.autocast}"),
                                               (s.checkpointing == "none", f"-ckpt-{s.checkpointing}"),
                                               (s.micro_batches == 1, f"-mb{s.micro_batches}"),
                                               (s.zero_grad == "none", f"-zg-{s.zero_grad}"),
                                               (s.shard == "none", f"-{s.shard}-N{s.world_size}"),
                                               (s.reshard_after_forward, "-keep"),
                                               (s.tensor_parallel == 1, f"-tp{s.tensor_parallel}"),
                                               (not s.sequence_parallel, "-sp")) if not default)
    source = "" if c.source == BUILTIN else f"{c.source}-"
    return (f"{source}{arch}V{c.vocab_size}-T{c.context_length}-L{c.num_layers}-D{c.d_model}-H{c.num_heads}"
            f"-F{c.d_ff}-{c.positional}-{s.attention}-{s.dtype}{setup}|b{spec.batch_size}"
            f"|{s.optimizer_class or s.optimizer}|{device}")


def expand(grid: Grid, device: str | None = None) -> list[Point]:
    """Every point of the grid, in order (base, each axis, extras), each key once; a point on several axes
    (the base point lies on all of them) lists them all."""
    device = device or grid.device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    found: dict[str, Point] = {}

    def add(spec: StepSpec, axes: tuple[str, ...]) -> None:
        key = point_key(spec, device)
        old = found.get(key)
        if old is not None:
            found[key] = dataclasses.replace(old, axes=old.axes + tuple(a for a in axes if a not in old.axes))
            return
        setup = spec.setup
        label = f"{spec.model.name} b={spec.batch_size}" + (
            "" if setup.optimizer == "foreach" else f" {setup.optimizer}") + (
            "" if setup.shard == "none" else f" {setup.shard}×{setup.world_size}") + (
            "" if setup.tensor_parallel == 1 else f" tp{setup.tensor_parallel}") + (
            " sp" if setup.sequence_parallel else "")
        found[key] = Point(key, spec, device, axes, label)

    if grid.base is not None:
        for optimizer in grid.optimizers:
            base = grid.base.replace(optimizer=optimizer)
            add(base, tuple(grid.axes))
            for axis, values in grid.axes.items():
                for value in values:
                    if axis == "batch_size":
                        add(base.replace(batch_size=value), (axis,))
                    else:
                        add(vary(base, axis, value), (axis,))
    for spec, batches, optimizers in grid.extras:
        for optimizer in optimizers:
            for batch in batches:
                add(spec.replace(batch_size=batch, optimizer=optimizer), ())
    return list(found.values())
