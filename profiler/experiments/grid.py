"""Sweep grids: a TOML file read strictly, expanded into measurement points with stable keys.

A grid file (profiler/experiments/grids/<name>.toml, or any path):

    name = "ci"                      # optional; defaults to the file's stem
    description = "one line"         # optional
    device = "meta"                  # default device: meta | cpu | cuda
    optimizers = ["foreach"]         # AdamW implementations measured at every base and axis point
    max_batch_budget = "80GB"        # optional: also measure each point's largest batch in this budget

    [base]                           # the configuration every axis varies around
    preset = "mini"                  # optional; any ModelConfig field overrides it
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
    arch = ["gpt2", "llama"]         # the block (reference, gpt2, llama), with that arch's own defaults

    [[points]]                       # explicit extra points
    preset = "gpt2-xl"               # and/or ModelConfig fields
    batch_sizes = [1]
    optimizers = ["foreach"]         # optional; defaults to the grid's list

Every mistake (an unknown key, a bad value, a size the model rejects) raises GridError naming the file, the key
and the problem, before anything is measured or written.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytic.units import parse_bytes
from model.config import (ARCH_OPTIONS, ATTENTION_OPTIONS, AUTOCAST_OPTIONS, CHECKPOINTING_OPTIONS,
                          SHARD_OPTIONS, ZERO_GRAD_OPTIONS, ModelConfig, PRESETS)
from model.vocabulary import DEVICES, OPTIMIZERS

GRID_DIR = Path(__file__).parent / "grids"
AXES = ("batch_size", "context_length", "d_model", "num_layers", "num_heads", "vocab_size", "micro_batches",
        "world_size")
OPTION_AXES = {"arch": ARCH_OPTIONS, "checkpointing": CHECKPOINTING_OPTIONS, "zero_grad": ZERO_GRAD_OPTIONS,
               "attention": ATTENTION_OPTIONS, "autocast": AUTOCAST_OPTIONS,
               "shard": SHARD_OPTIONS}  # axes whose values are names
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
TOP_KEYS = ("name", "description", "device", "optimizers", "max_batch_budget", "base", "axes", "points")
BASE_KEYS = ("preset", "batch_size") + CONFIG_FIELDS
POINT_KEYS = ("preset", "batch_sizes", "optimizers") + CONFIG_FIELDS


class GridError(ValueError):
    """A grid file that cannot be used; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Point:
    key: str                  # stable: the same configuration, batch, optimizer and device give the same key
    config: ModelConfig
    batch_size: int
    device: str
    optimizer: str
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
    base: ModelConfig | None
    base_batch: int | None
    axes: dict[str, tuple[int, ...]]
    extras: tuple[tuple[ModelConfig, tuple[int, ...], tuple[str, ...]], ...]
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


def _config(path: Path, where: str, table: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from `preset` and/or fields; the model's own checks name the problem."""
    fields = {k: v for k, v in table.items() if k in CONFIG_FIELDS}
    name = table.get("preset")
    try:
        if name is not None:
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
            return PRESETS[name].replace(**fields)
        return ModelConfig(**fields)
    except (TypeError, ValueError) as error:
        raise _fail(path, where, str(error)) from None


def vary(base: ModelConfig, axis: str, value: int) -> ModelConfig:
    """The base with one size changed and named after it; d_ff follows d_model unless the base fixed it."""
    changes = {axis: value, "name": f"{base.name}:{axis}={value}"}
    if axis == "d_model" and base.d_ff == 4 * base.d_model:
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

    base = base_batch = None
    axes: dict[str, tuple[int, ...]] = {}
    if "base" in data:
        _check_keys(path, data["base"], BASE_KEYS, "base")
        base = _config(path, "base", data["base"])
        base_batch = _positive_ints(path, "base.batch_size", [data["base"].get("batch_size", 1)])[0]
    if "axes" in data:
        if base is None:
            raise _fail(path, "axes", "needs a [base] table to vary around")
        _check_keys(path, data["axes"], AXES + tuple(OPTION_AXES), "axes")
        for axis, values in data["axes"].items():
            axes[axis] = (_options(path, f"axes.{axis}", values, OPTION_AXES[axis]) if axis in OPTION_AXES
                          else _positive_ints(path, f"axes.{axis}", values))
            for index, value in enumerate(axes[axis]):
                try:
                    if axis == "batch_size":
                        base.micro_batch_size(value)
                    else:
                        vary(base, axis, value).micro_batch_size(base_batch)
                except ValueError as error:
                    raise _fail(path, f"axes.{axis}[{index}] = {value}", str(error)) from None

    extras = []
    points = data.get("points", [])
    if not isinstance(points, list):
        raise _fail(path, "points", "must be an array of tables ([[points]])")
    for index, table in enumerate(points):
        where = f"points[{index}]"
        _check_keys(path, table, POINT_KEYS, where)
        config = _config(path, where, table)
        batches = _positive_ints(path, f"{where}.batch_sizes", table.get("batch_sizes", [1]))
        for batch in batches:
            try:
                config.micro_batch_size(batch)
            except ValueError as error:
                raise _fail(path, f"{where}.batch_sizes", str(error)) from None
        extras.append((config, batches,
                       _optimizers(path, f"{where}.optimizers", table.get("optimizers", list(optimizers)))))
    if base is None and not extras:
        raise _fail(path, "(top level)", "defines no points: give a [base] table or [[points]]")
    return Grid(name=data.get("name", path.stem), description=data.get("description", ""), source=path,
                text=text, device=device, optimizers=optimizers, base=base, base_batch=base_batch, axes=axes,
                extras=tuple(extras), max_batch_budget=budget)


def point_key(config: ModelConfig, batch_size: int, optimizer: str, device: str) -> str:
    """Stable and readable: every size and option of the model (not its name), the batch, optimizer and device;
    the arch first unless it is the reference block (gpt2 with its dropout, llama with its key/value heads)."""
    c = config
    arch = {"reference": "", "gpt2": f"gpt2-p{c.dropout:g}-", "llama": f"llama-G{c.kv_heads}-"}[c.arch]
    setup = "".join(part for default, part in ((c.autocast == "none", f"-amp-{c.autocast}"),
                                               (c.checkpointing == "none", f"-ckpt-{c.checkpointing}"),
                                               (c.micro_batches == 1, f"-mb{c.micro_batches}"),
                                               (c.zero_grad == "none", f"-zg-{c.zero_grad}"),
                                               (c.shard == "none", f"-{c.shard}-N{c.world_size}"),
                                               (c.reshard_after_forward, "-keep")) if not default)
    return (f"{arch}V{c.vocab_size}-T{c.context_length}-L{c.num_layers}-D{c.d_model}-H{c.num_heads}-F{c.d_ff}"
            f"-{c.positional}-{c.attention}-{c.dtype}{setup}|b{batch_size}|{optimizer}|{device}")


def expand(grid: Grid, device: str | None = None) -> list[Point]:
    """Every point of the grid, in order (base, each axis, extras), each key once; a point on several axes
    (the base point lies on all of them) lists them all."""
    device = device or grid.device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    found: dict[str, Point] = {}

    def add(config: ModelConfig, batch: int, optimizer: str, axes: tuple[str, ...]) -> None:
        key = point_key(config, batch, optimizer, device)
        old = found.get(key)
        if old is not None:
            found[key] = dataclasses.replace(old, axes=old.axes + tuple(a for a in axes if a not in old.axes))
            return
        label = f"{config.name} b={batch}" + ("" if optimizer == "foreach" else f" {optimizer}") + (
            "" if config.shard == "none" else f" {config.shard}×{config.world_size}")
        found[key] = Point(key, config, batch, device, optimizer, axes, label)

    if grid.base is not None:
        for optimizer in grid.optimizers:
            add(grid.base, grid.base_batch, optimizer, tuple(grid.axes))
            for axis, values in grid.axes.items():
                for value in values:
                    if axis == "batch_size":
                        add(grid.base, value, optimizer, (axis,))
                    else:
                        add(vary(grid.base, axis, value), grid.base_batch, optimizer, (axis,))
    for config, batches, optimizers in grid.extras:
        for optimizer in optimizers:
            for batch in batches:
                add(config, batch, optimizer, ())
    return list(found.values())
