"""Units. Bytes and FLOPs are integers everywhere inside; units appear only when formatting, through here.

GB = 10^9 bytes and GiB = 2^30 bytes are never mixed: every budget string names its unit.
"""
from __future__ import annotations

import re

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$")
SECONDS_PER_DAY = 86_400
DEFAULT_BUDGET = "80GB"  # the seeds' question: the memory of an 80 GB card


BUDGET_LIMIT = 2**62  # bytes: what the figures a budget is compared with hold exactly (analytic.limits)


def parse_bytes(text: str) -> int:
    """'80GB' -> 80·10^9, '80GiB' -> 80·2^30, '512 MiB', '1e3'? no: a number and a unit, nothing else."""
    match = _BUDGET.match(str(text))
    if not match or match.group(2) not in UNITS:
        raise ValueError(f"cannot read memory budget {text!r}: write a number and a unit, "
                         f"one of {', '.join(UNITS)} (for example 80GB or 80GiB)")
    value = float(match.group(1)) * UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"memory budget must be positive, got {text!r}")
    if value > BUDGET_LIMIT:
        raise ValueError(f"memory budget {text!r} is past the 2^62 bytes that 64-bit counts hold exactly")
    return int(value)


def format_bytes(n: float, unit: str = "GiB", digits: int = 2) -> str:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}")
    return f"{n / UNITS[unit]:,.{digits}f} {unit}"


def format_flops(n: float, digits: int = 3) -> str:
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}g} {prefix}FLOP"
    return f"{n:.{digits}g} FLOP"


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured; 0 when both are 0, inf when only the measurement is 0."""
    if measured == 0:
        return 0.0 if predicted == 0 else float("inf")
    return (predicted - measured) / measured
