"""Audit of the five seed answers: does each GPT-2 XL figure an answer states follow from its own formulas?

For each seed (analytic.seeds), `recompute(PROBLEM)` re-derives the figures exactly from the formulas the answer
wrote; a stated figure "follows" when it is within TOLERANCE of that (max_batch_80GB: when equal). Where it does
not, the audit looks for the reading that explains it, best match first:
    GB stated, GiB computed   stated/10^9 == recomputed/2^30 (bytes figures)
    80GB vs 80GiB             the stated max batch is what an 80 GiB budget gives
    batch=1 slip              the stated figure is what the formulas give for batch 1 instead of 1024
    1000x slip                stated x 1000 or / 1000 follows
    unexplained constant      the answer gives no derivation to recompute the figure from
    contradicts its own itemisation   an AdamW FLOPs-per-parameter constant other than the sum of its own ops
    does not follow           none of these
The seed's REASONS (causes found in its text) are appended to its flags.

audit() returns plain data (JSON-ready):
    {"problem": {...}, "tolerance": 0.01, "textbook": {figure: value},
     "seeds": {SEED_FILE: {"name", "description", "stated", "recomputed", "checks", "flags", "notes"}},
     **extra_blocks}
Other blocks ("exact", "measured") are added beside "seeds" through extra_blocks; to_markdown renders any block
shaped {figure: value} as a column of the summary table.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

from analytic import textbook
from analytic.seeds import seed_modules
from analytic.textbook import PROBLEM, TrainingProblem
from analytic.units import UNITS, format_bytes, format_flops, relative_error

# "Follows" means within 1 % of the answer's own formula: the answers round to 3 significant figures (1.64B for
# 1,637,176,000: 0.2 %; 14.4 for 14.45: 0.4 %; 6380 days through a rounded 8.4e5 T/day: 0.4 %). 1 % also keeps
# the slip readings apart (1000 and 1024 differ by 2.4 %).
TOLERANCE = 0.01

FIGURES = ("params", "fixed_memory_bytes", "per_batch_memory_bytes", "max_batch_80GB", "adamw_flops_per_param",
           "adamw_flops", "flops_per_step", "training_days")
BYTES_FIGURES = ("fixed_memory_bytes", "per_batch_memory_bytes")
FLOPS_FIGURES = ("adamw_flops", "flops_per_step")

FOLLOWS = "follows"
KINDS = ("GB stated, GiB computed", "80GB vs 80GiB", "batch=1 slip", "1000x slip", "unexplained constant",
         "contradicts its own itemisation", "does not follow")


def close(stated: float, recomputed: float, tolerance: float = TOLERANCE) -> bool:
    return abs(relative_error(stated, recomputed)) <= tolerance


def classify(key: str, stated: float, recomputed: float | None, at_80gib: dict, at_batch_1: dict) -> str:
    """The kind of a stated figure (FOLLOWS or one of KINDS), from the recomputation and two alternative runs.

    1. nothing to recompute from                    -> unexplained constant
       AdamW FLOPs per parameter other than the sum of its itemisation -> contradicts its own itemisation
    2. max batch: equal -> follows; equal to the 80 GiB run's -> 80GB vs 80GiB
    3. within TOLERANCE                             -> follows
    4. the alternative readings that fall within TOLERANCE, the closest wins
    """
    if recomputed is None:
        return "unexplained constant"
    if key == "adamw_flops_per_param":
        return FOLLOWS if stated == recomputed else "contradicts its own itemisation"
    if key == "max_batch_80GB":
        if stated == recomputed:
            return FOLLOWS
        return "80GB vs 80GiB" if stated == at_80gib[key] else "does not follow"
    if close(stated, recomputed):
        return FOLLOWS
    readings = [("1000x slip", stated * 1000, recomputed), ("1000x slip", stated / 1000, recomputed)]
    if key in BYTES_FIGURES:
        readings.append(("GB stated, GiB computed", stated / UNITS["GB"] * UNITS["GiB"], recomputed))
    if at_batch_1[key] != recomputed:
        readings.append(("batch=1 slip", stated, at_batch_1[key]))
    matches = [(abs(relative_error(s, r)), kind) for kind, s, r in readings if close(s, r)]
    return min(matches)[1] if matches else "does not follow"


def format_figure(key: str, value: Any) -> str:
    """Units only here: bytes in GB and GiB, FLOPs with a prefix, days and counts with separators."""
    if value is None:
        return "—"
    if key in BYTES_FIGURES:
        return f"{format_bytes(value, 'GB')} ({format_bytes(value, 'GiB')})"
    if key in FLOPS_FIGURES:
        return format_flops(value)
    if key == "training_days":
        return f"{value:,.2f} days"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _flag(key: str, kind: str, stated: float, recomputed: float | None, at_80gib: dict, at_batch_1: dict,
          reason: str | None) -> str:
    text = f"{key}: {kind}: stated {format_figure(key, stated)}"
    if recomputed is not None:
        text += f", its own formulas give {format_figure(key, recomputed)}"
    if kind == "80GB vs 80GiB":
        text += f"; an 80 GiB budget gives {at_80gib[key]}"
    elif kind == "batch=1 slip":
        text += f"; for batch 1 they give {format_figure(key, at_batch_1[key])}"
    return f"{text} — {reason}" if reason else text


def audit_seed(module: ModuleType, problem: TrainingProblem = PROBLEM) -> dict[str, Any]:
    """One seed's block: stated, recomputed, checks (kind and relative difference per stated figure), flags."""
    recomputed = module.recompute(problem)
    at_80gib = module.recompute(problem.replace(budget_bytes=80 * UNITS["GiB"]))
    at_batch_1 = module.recompute(problem.replace(batch_size=1))
    checks, flags = {}, []
    for key in FIGURES:
        if key not in module.STATED:
            continue
        stated, value = module.STATED[key], recomputed[key]
        kind = classify(key, stated, value, at_80gib, at_batch_1)
        checks[key] = {"kind": kind, "follows": kind == FOLLOWS,
                       "relative_difference": None if value is None else relative_error(stated, value)}
        if kind != FOLLOWS:
            flags.append(_flag(key, kind, stated, value, at_80gib, at_batch_1, module.REASONS.get(key)))
    return {"name": module.NAME, "description": module.DESCRIPTION,
            "stated": {key: module.STATED[key] for key in FIGURES if key in module.STATED},
            "recomputed": recomputed, "checks": checks, "flags": flags, "notes": list(module.NOTES)}


def problem_block(problem: TrainingProblem = PROBLEM) -> dict[str, Any]:
    return {"config": problem.spec(problem.batch_size).flat(), "budget_bytes": problem.budget_bytes,
            "steps": problem.steps, "batch_size": problem.batch_size, "peak_flops_per_s": problem.peak_flops_per_s,
            "mfu": problem.mfu}


def audit(problem: TrainingProblem = PROBLEM, extra_blocks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole audit (see the module docstring); extra_blocks (e.g. "exact", "measured") sit beside "seeds"."""
    result = {"problem": problem_block(problem), "tolerance": TOLERANCE,
              "textbook": textbook.problem_figures(problem),
              "seeds": {module.SEED_FILE: audit_seed(module, problem) for module in seed_modules()}}
    for name, block in (extra_blocks or {}).items():
        if name in result:
            raise ValueError(f"audit block {name!r} already exists")
        result[name] = block
    return result


def _summary_columns(result: dict[str, Any]) -> list[tuple[str, dict]]:
    """(column title, {figure: value}) for every flat block: textbook and any extra block shaped like it."""
    return [(name, block) for name, block in result.items()
            if isinstance(block, dict) and name not in ("problem", "seeds")
            and any(key in block for key in FIGURES)]


def _answers_table(references: list[tuple[str, dict]]) -> list[str]:
    """Every figure of the reference blocks (textbook, exact, measured), the 80 GiB budget and the peak included."""
    keys = list(dict.fromkeys(key for _, block in references for key in block if key != "device"))
    lines = ["", "## The questions answered", "",
             "| figure | " + " | ".join(name for name, _ in references) + " |",
             "|---|" + "---|" * len(references)]
    for key in keys:
        cells = [format_figure(key, block.get(key)) if key in FIGURES or key.startswith("max_batch")
                 else _plain(key, block.get(key)) for _, block in references]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def _plain(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key.endswith("_bytes") or key.startswith("peak_bytes"):
        return f"{format_bytes(value, 'GB')} ({format_bytes(value, 'GiB')})"
    return str(value)


def to_markdown(result: dict[str, Any]) -> str:
    """A summary table (seeds' stated vs recomputed, reference columns), then each seed's flags and notes."""
    problem = result["problem"]
    lines = ["# Audit of the seed answers (GPT-2 XL)", "",
             f"Budget {format_bytes(problem['budget_bytes'], 'GB')}, {problem['steps']:,} steps of batch "
             f"{problem['batch_size']}, {problem['peak_flops_per_s'] / 1e12:g} TFLOP/s at {problem['mfu']:.0%} MFU. "
             f"A stated figure follows when within {result['tolerance']:.0%} of the answer's own formulas.", ""]
    references = _summary_columns(result)
    header = ["seed", "figure", "stated", "its formulas give", "verdict"] + [name for name, _ in references]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for seed, block in result["seeds"].items():
        for key, check in block["checks"].items():
            row = [seed, key, format_figure(key, block["stated"][key]),
                   format_figure(key, block["recomputed"][key]), check["kind"]]
            row += [format_figure(key, ref.get(key)) for _, ref in references]
            lines.append("| " + " | ".join(row) + " |")
    lines += _answers_table(references)
    for seed, block in result["seeds"].items():
        lines += ["", f"## {seed} ({block['name']})", "", block["description"], "", "Flags:"]
        lines += [f"- {flag}" for flag in block["flags"]] or ["- none"]
        lines += ["", "Choices and mistakes that do not break its own arithmetic:"]
        lines += [f"- {note}" for note in block["notes"]]
    return "\n".join(lines) + "\n"
