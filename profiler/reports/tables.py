"""Plain-text tables for the CLI: one way to format a figure, one way to align columns."""
from __future__ import annotations

import re
import textwrap

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


def wrapped(text: str, width: int = WIDTH, indent: str = "  ") -> str:
    """A line of prose within `width` columns, its continuation lines indented by `indent`; words are never split
    (an option's dashes stay with it; a word longer than the width, a long path, overflows whole)."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False))


def no_answer(names: list[str]) -> str:
    """The line under a command's answers naming the formula sets left out (analytic.formula_sets.describing)."""
    return wrapped("  no answer (they do not describe this setup): " + ", ".join(names), indent="    ")


# The cell of a relative error over a measured 0, and the line that explains it under a table that shows one.
UNBOUNDED = "∞"
UNBOUNDED_MEANS = f"{UNBOUNDED}: the step measured 0 of a figure the set predicts (its relative error has no bound)"


def relative_cell(error: float) -> str:
    """A relative error as a signed percentage; over a measured 0, UNBOUNDED."""
    if error in (float("inf"), float("-inf")):
        return UNBOUNDED
    return f"{error:+.1%}"


def percent_cell(value) -> str:
    """An unsigned error in a report's table: '3.14 %', '—' where there is none, UNBOUNDED over a measured 0."""
    if value is None or value != value:
        return "—"
    if value in (float("inf"), float("-inf")):
        return UNBOUNDED
    return f"{value * 100:.3g} %"


def shows_unbounded(cells) -> bool:
    """Whether any of the cells (strings, or anything str() reads) shows UNBOUNDED, so that UNBOUNDED_MEANS goes
    under its table."""
    return any(UNBOUNDED in str(cell) for cell in cells)


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


def markdown_for_terminal(text: str, width: int = WIDTH) -> str:
    """A Markdown document (headings, paragraphs, '- ' items, pipe tables) as plain text within `width` columns:
    each table aligned as fit_width aligns one, in as many parts (one under the other) as it needs, each repeating
    the key columns (the fewest leading columns whose cells tell the rows apart); paragraphs and items wrapped,
    an item's continuation under its text. Cells are kept whole: a single cell wider than `width` overflows."""
    lines, table = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if table:
            lines.append(_table_for_terminal(table, width))
            table = []
        lines.append(_wrap(line, width))
    return "\n".join(lines).rstrip("\n") + "\n"


GLUE = "\ue000"  # a private-use character: the spaces of what must stay on one line, while wrapping


def wrap_keeping(line: str, width: int, indent: str, whole: str, **options) -> list[str]:
    """textwrap.wrap of `line` (continuation lines `indent`ed), each match of the regular expression `whole` kept
    on one line; `options` go to textwrap."""
    glued = re.sub(whole, lambda unit: unit.group().replace(" ", GLUE), line)
    return [part.replace(GLUE, " ") for part in textwrap.wrap(glued, width, subsequent_indent=indent,
                                                               break_on_hyphens=False, **options)]


def _wrap(line: str, width: int) -> str:
    """One paragraph or '- ' item wrapped, its continuation under its text; a spaced dash ('80 - 31.70') stays
    with the word before it, never starting a continuation line, where it would read as an item of its own."""
    indent = " " * (2 if line.startswith("- ") else 0)
    return "\n".join(wrap_keeping(line, width, indent, r"\S+ -(?= )"))


def _table_for_terminal(rows: list[list[str]], width: int) -> str:
    header, body = rows[0], [row for row in rows[1:] if not all(set(cell) <= set("-: ") for cell in row)]
    columns = [[name, *(row[i] for row in body)] for i, name in enumerate(header)]
    keys = next((k for k in range(1, len(header)) if len({tuple(row[:k]) for row in body}) == len(body)),
                len(header))
    if sum(2 + max(map(len, column)) for column in columns[:keys]) > width // 2:
        keys = 1  # key columns that leave too little room: the first alone
    return fit_width(columns[:keys], {column[0]: column[1:] for column in columns[keys:]}, width)
