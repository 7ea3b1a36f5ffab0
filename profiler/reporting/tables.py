"""Plain-text tables for the CLI: one way to format a figure, one way to align columns."""
from __future__ import annotations

from analytic.units import format_bytes, format_flops


def format_cell(key: str, value) -> str:
    """Bytes as GiB (GB), FLOPs with a prefix, other numbers with separators; '—' where a set has no figure."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if key.endswith("bytes") or key.startswith(("categories_at_peak.", "saved_activations_by_component.")):
        return f"{format_bytes(value, 'GiB')} ({format_bytes(value, 'GB')})"
    if key.startswith(("flops.", "flops_matmul.")):
        return format_flops(value)
    return f"{value:,}"


def render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])
