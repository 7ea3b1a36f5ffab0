"""The report's figures (matplotlib, Agg): each function takes tables or figures and returns PNG bytes
(batch_curve, which `max-batch --plot` writes, any of IMAGE_FORMATS)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analytic.units import UNITS  # noqa: E402
from model.vocabulary import CATEGORIES, COMPONENTS, PHASES  # noqa: E402

GIB = UNITS["GiB"]
DPI = 110
MARKERS = "osD^vPX*"  # overlapping sets stay distinguishable
IMAGE_FORMATS = ("png", "jpg", "jpeg", "svg", "pdf", "webp")  # matplotlib writes them (jpg and webp with Pillow)


def image_format(path: str | Path) -> str | None:
    """The format a file name's suffix names ("x.JPG": "jpg"), None where it names none of IMAGE_FORMATS."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in IMAGE_FORMATS else None


def _image(figure: plt.Figure, image_format: str = "png") -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _colours(names: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _percent(axis: Any) -> None:
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value * 100:g} %"))


def peak_scatter(table: pd.DataFrame) -> bytes:
    """Predicted vs measured peak bytes on log-log axes, one colour per formula set, with y = x."""
    peaks = table[table["term"] == "peak_bytes"]
    figure, ax = plt.subplots(figsize=(7.5, 6))
    colours = _colours(list(peaks["formula_set"].unique()))
    for index, (name, group) in enumerate(peaks.groupby("formula_set", sort=False)):
        ax.scatter(group["measured"] / GIB, group["predicted"] / GIB, s=26, alpha=0.75, color=colours[name],
                   marker=MARKERS[index % len(MARKERS)], label=name)
    values = pd.concat([peaks["measured"], peaks["predicted"]]) / GIB
    values = values[values > 0]
    if len(values):
        low, high = values.min() / 1.5, values.max() * 1.5
        ax.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="y = x")
    ax.set(xscale="log", yscale="log", xlabel="measured peak (GiB)", ylabel="predicted peak (GiB)",
           title="Peak memory of one training step: predicted vs measured")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    return _image(figure)


def error_by_axis(table: pd.DataFrame, axes: list[str]) -> bytes:
    """Relative error of the peak against each swept axis, one panel per axis, one line per formula set."""
    peaks = table[table["term"] == "peak_bytes"]
    columns = min(3, len(axes))
    rows = -(-len(axes) // columns)
    figure, panels = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False)
    colours = _colours(list(peaks["formula_set"].unique()))
    for panel, axis in zip(panels.flat, axes):
        on_axis = peaks[peaks["axes"].str.split("+").apply(lambda names: axis in names)]
        for name, group in on_axis.groupby("formula_set", sort=False):
            group = group.sort_values(axis)
            panel.plot(group[axis], group["relative_error"], marker="o", markersize=4, color=colours[name],
                       label=name)
        panel.axhline(0, color="black", linewidth=0.8)
        panel.set_xscale("log", base=2)
        if peaks["relative_error"].abs().max() > 1:  # a set off by more than 2x: keep the others readable
            panel.set_yscale("symlog", linthresh=0.01)
        _percent(panel.yaxis)
        panel.set(title=axis, xlabel=axis, ylabel="relative error of peak")
        panel.grid(True, alpha=0.3)
    for panel in list(panels.flat)[len(axes):]:
        panel.set_visible(False)
    handles, labels = panels.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8) or 1,
                  bbox_to_anchor=(0.5, 1.0 + 0.04 / rows), fontsize=9)
    figure.tight_layout()
    return _image(figure)


def memory_timeline(timeline: dict[str, list], title: str) -> bytes:
    """Live bytes by category after each op of one step, stacked; one panel per phase, so that the optimizer step
    (a few dozen ops against thousands) is as visible as the forward and the backward."""
    categories = [c for c in CATEGORIES if c in timeline] + sorted(
        set(timeline) - set(CATEGORIES) - {"op_index", "phase"})
    colours = _colours(list(categories))
    phases = [p for p in PHASES if p in timeline["phase"]]
    figure, panels = plt.subplots(1, len(phases), figsize=(12, 4.8), sharey=True, squeeze=False,
                                  gridspec_kw={"width_ratios": [3 if p != "optimizer" else 1.2 for p in phases],
                                               "wspace": 0.04})
    for panel, phase in zip(panels.flat, phases):
        index = [i for i, p in enumerate(timeline["phase"]) if p == phase]
        ops = [timeline["op_index"][i] for i in index]
        panel.stackplot(ops, *[[timeline[c][i] / GIB for i in index] for c in categories], labels=categories,
                        colors=[colours[c] for c in categories], alpha=0.85, linewidth=0)
        panel.set(title=phase, xlabel="op index", xlim=(ops[0], ops[-1]) if len(ops) > 1 else None)
        panel.grid(True, alpha=0.3)
    panels.flat[0].set_ylabel("live memory (GiB)")
    panels.flat[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
    figure.suptitle(title, y=1.0)
    return _image(figure)


def flops_by_component(flops: dict[str, int], title: str) -> bytes:
    """FLOPs of one step by component, log scale (the LM head and the MLP dwarf the norms)."""
    names = [c for c in COMPONENTS if flops.get(c)] + sorted(set(flops) - set(COMPONENTS))
    names = [n for n in names if flops.get(n, 0) > 0]  # log axis: zero (and any negative) has no bar
    figure, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1.5))
    values = [flops[n] for n in names]
    ax.barh(names, values, color="#4c72b0")
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="FLOPs per step", title=title)
    if values:
        ax.set_xlim(min(values) / 2, max(values) * 2)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _image(figure)


def categories_at_peak(columns: dict[str, dict[str, int]], title: str) -> bytes:
    """Bytes by memory category at the peak, one bar per source (formula sets and measured) in each category."""
    categories = [c for c in CATEGORIES if any(values.get(c) for values in columns.values())]
    figure, ax = plt.subplots(figsize=(9, 0.5 * len(categories) * max(1, len(columns)) / 2 + 1.8))
    height = 0.8 / max(1, len(columns))
    colours = _colours(list(columns))
    for index, (name, values) in enumerate(columns.items()):
        positions = [i + index * height for i in range(len(categories))]
        ax.barh(positions, [values.get(c, 0) / GIB for c in categories], height=height, label=name,
                color=colours[name])
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(categories))], categories)
    ax.invert_yaxis()
    ax.set(xlabel="GiB at the peak", title=title)
    ax.legend(fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    return _image(figure)


def batch_curve(measured: dict[int, int], predicted: dict[str, tuple[list[int], list[int]]],
                budgets: dict[str, int], title: str, image_format: str = "png") -> bytes:
    """Peak bytes against batch size: the measured points, one line per formula set, one dashed line per
    budget ("what fits my GPU": where a line crosses a budget is that set's answer); in `image_format`."""
    figure, ax = plt.subplots(figsize=(8, 5.5))
    colours = _colours(list(predicted))
    for index, (name, (batches, peaks)) in enumerate(predicted.items()):
        ax.plot(batches, [p / GIB for p in peaks], color=colours[name], linewidth=1.4, label=name,
                marker=MARKERS[index % len(MARKERS)], markersize=3)
    if measured:
        ax.scatter(list(measured), [p / GIB for p in measured.values()], s=60, color="black", zorder=5,
                   label="measured", marker="o", facecolors="none", linewidths=1.6)
    for index, (label, budget) in enumerate(budgets.items()):
        ax.axhline(budget / GIB, color="grey", linestyle=(0, (4, 2 + index)), linewidth=1)
        ax.text(1.01, budget / GIB, label, transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                color="dimgrey")
    ax.set(xlabel="batch size", ylabel="peak of the step (GiB)", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _image(figure, image_format)


def error_matrix(peak: pd.DataFrame) -> bytes:
    """Heat map of the median |relative error| of the peak: one row per setup, one column per formula set, grey
    where a set is not graded; the value written in each cell."""
    grid = peak.pivot(index="setup", columns="formula set", values="median")
    grid = grid[list(dict.fromkeys(peak["formula set"]))]
    figure, ax = plt.subplots(figsize=(1.1 * len(grid.columns) + 4, 0.38 * len(grid) + 1.8))
    cmap = plt.get_cmap("RdYlGn_r").copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, vmin=0, vmax=0.5, aspect="auto")
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(value):
            ax.text(j, i, f"{value * 100:.2g}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=35, ha="right")
    ax.set_yticks(range(len(grid.index)), grid.index, fontsize=8)
    ax.set_title("Median |error| of the peak (%), by setup and formula set")
    bar = figure.colorbar(image, ax=ax, fraction=0.03)
    _percent(bar.ax.yaxis)
    return _image(figure)


def rank_peak(curves: dict[str, dict[int, int]], budgets: dict[str, int]) -> bytes:
    """Peak bytes of one rank against the world size (log scale), one line per setup, one dashed line per budget
    (where a line falls under a budget is how many ranks it needs)."""
    figure, ax = plt.subplots(figsize=(8, 5.5 + 0.2 * len(curves)))
    for index, (label, peaks) in enumerate(curves.items()):
        ranks = sorted(peaks)
        ax.plot(ranks, [peaks[n] / GIB for n in ranks], marker=MARKERS[index % len(MARKERS)], label=label)
    for index, (label, budget) in enumerate(budgets.items()):
        ax.axhline(budget / GIB, color="grey", linestyle=(0, (4, 2 + index)), linewidth=1)
        ax.text(1.01, budget / GIB, label, transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                color="dimgrey")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="ranks (world size)", ylabel="peak of one rank (GiB)", title="FSDP2: the peak of one rank")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8)
    figure.tight_layout()
    return _image(figure)
