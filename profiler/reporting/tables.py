"""Plain-text tables for the CLI: one way to format a figure, one way to align columns."""
from __future__ import annotations

from analytic.units import UNITS, format_bytes, format_flops

WIDTH = 120  # columns a CLI table fits without --wide
HEADLINE = ("peak_bytes", "phases.forward.peak_bytes", "phases.backward.peak_bytes", "phases.optimizer.peak_bytes",
            "saved_activations_bytes", "categories_at_peak.parameters", "categories_at_peak.gradients",
            "categories_at_peak.optimizer_state", "categories_at_peak.saved_activations", "flops.forward",
            "flops.backward", "flops.optimizer", "flops_matmul.forward", "params")
# a sharded step's own: one rank's model states (what ZeRO and FSDP2's closed form predict) and FSDP2's buffers
SHARDED_HEADLINE = ("model_states_bytes", "model_states.parameters", "model_states.gradients",
                    "model_states.optimizer_state", "categories_at_peak.unsharded_parameters",
                    "categories_at_peak.all_gather_buffers", "categories_at_peak.unsharded_gradients",
                    "categories_at_peak.reduce_scatter_buffers")


def format_cell(key: str, value) -> str:
    """Bytes in the binary unit that fits (with the decimal figure beside it from KiB on), FLOPs with a prefix,
    counts as integers with separators; '—' where a set has no figure."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if key.endswith("bytes") or key.startswith(("categories_at_peak.", "saved_activations_by_component.",
                                                      "model_states.")):
        return human_bytes(value)
    if key.startswith(("flops.", "flops_matmul.")):
        return format_flops(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def human_bytes(value: float) -> str:
    """'30.50 GiB (32.74 GB)', '20.07 MiB (21.04 MB)', '312 B'."""
    for binary, decimal in (("TiB", "TB"), ("GiB", "GB"), ("MiB", "MB"), ("KiB", "KB")):
        if abs(value) >= UNITS[binary]:
            return f"{format_bytes(value, binary)} ({format_bytes(value, decimal)})"
    return f"{int(value):,} B"


def relative_cell(error: float) -> str:
    """A relative error as a signed percentage; a figure the measurement does not have (measured 0) says so."""
    if error in (float("inf"), float("-inf")):
        return "new term"
    return f"{error:+.1%}"


def percent_cell(value) -> str:
    """An unsigned error in a report's table: '3.14 %', '—' where there is none, '∞' over a measured 0."""
    if value is None or value != value:
        return "—"
    if value in (float("inf"), float("-inf")):
        return "∞"
    return f"{value * 100:.3g} %"


def render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def fit_width(fixed: list[list[str]], columns: dict[str, list[str]], width: int | None) -> str:
    """Tables of the `fixed` columns (each its header then its cells, repeated on every table) and the named
    `columns` after them, as many tables as it takes for each to fit `width` characters (one when width is None),
    separated by a blank line."""
    fixed_width = sum(2 + max(map(len, column)) for column in fixed) - 2
    used, groups = fixed_width, [[]]
    for name, cells in columns.items():
        need = 2 + max(map(len, [name, *cells]))
        if width is not None and groups[-1] and used + need > width:
            groups.append([])
            used = fixed_width
        groups[-1].append(name)
        used += need
    tables = []
    for group in groups:
        table = [[name, *columns[name]] for name in group]
        tables.append(render([list(row) for row in zip(*fixed, *table)]))
    return "\n\n".join(tables)
