"""`explain`: for each component and memory term, the textbook's bytes, ours, the measured bytes (on meta), and
one line on why they differ."""
from __future__ import annotations

import argparse
import json
import textwrap

from analytic import textbook
from analytic.exact.explain import WHY_COMPONENT, why_term
from analytic.units import format_bytes
from model.vocabulary import LAYER_COMPONENTS, components_of
from profiler.commands.options import add_allow_long_argument, add_config_arguments, check_work, spec_from_args
from profiler.reports.tables import WIDTH, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--markdown", action="store_true",
                        help="Markdown tables, the derived formula and the reason in a column (default: a table of "
                             "120 columns, each row's formula and reason wrapped under it)")
    add_allow_long_argument(parser)


def explanation_rows(spec) -> tuple[list[list], list[list]]:
    """(component rows, term rows): [name, textbook, exact, measured, why]; bytes, None where absent."""
    # imported here, not at the top, so that `--help` needs no torch
    from analytic.exact.formula import formula_key, readable, saved_by_component
    from analytic.formula_sets import exact_set
    from profiler.measuring.measure import measure

    ours = exact_set().predict(spec)
    theirs = textbook.predict(spec)
    measured = measure(spec, "meta", count_flops=False, progress=True).measured
    derived = saved_by_component(formula_key(spec), exact_set().programs)
    def formula(name: str) -> str:  # what the component saves, as derived
        return (readable(derived[name]) if name in derived else "0") + (" per layer" if name in LAYER_COMPONENTS
                                                                          else "")

    components = [[name, theirs["saved_activations_by_component"].get(name),
                   ours.get("saved_activations_by_component", {}).get(name),
                   measured["saved_activations_by_component"][name], f"{formula(name)}; {WHY_COMPONENT[name]}"]
                  for name in components_of(spec)]
    terms = [[name, theirs["categories_at_peak"].get(name), ours.get("categories_at_peak", {}).get(name),
              measured["categories_at_peak"][name], why_term(name, spec.setup)]
             for name in ("parameters", "gradients", "optimizer_state", "saved_activations", "optimizer_temporaries")]
    terms.append([f"peak ({measured['peak_phase']})", theirs["peak_bytes"], ours.get("peak_bytes"),
                  measured["peak_bytes"], why_term("peak", spec.setup)])
    return components, terms


def _cell(value) -> str:
    return "—" if value is None else format_bytes(value, "GiB", 3)


def markdown_table(title: str, rows: list[list]) -> list[str]:
    lines = [f"| {title} | textbook | exact | measured | derived formula (bytes); why they differ |",
             "|---|---:|---:|---:|---|"]
    lines += [f"| {name} | {_cell(a)} | {_cell(b)} | {_cell(c)} | {why} |" for name, a, b, c, why in rows]
    return lines


def terminal_table(title: str, rows: list[list]) -> list[str]:
    """The bytes in columns, and under each row its derived formula and why it differs, wrapped to WIDTH."""
    rendered = render([[title, "textbook", "exact", "measured"]]
                      + [[name, _cell(a), _cell(b), _cell(c)] for name, a, b, c, _ in rows]).splitlines()
    lines = rendered[:2]
    for line, row in zip(rendered[2:], rows):
        lines += [line, *textwrap.wrap(row[4], width=WIDTH, initial_indent="    ", subsequent_indent="    ")]
    return lines


def as_json(spec, components: list[list], terms: list[list]) -> dict:
    """The tables as one document: bytes per component and per category at the peak, under the field names of
    `measure --json` (saved_activations_by_component.<name>, categories_at_peak.<name>, peak_bytes)."""
    columns = ("textbook", "exact", "measured")

    def block(rows):
        return {name: dict(zip(columns, values), why=why) for name, *values, why in rows}

    peak = terms[-1]
    return {"config": spec.flat(), "batch_size": spec.batch_size, "optimizer": spec.setup.optimizer,
            "device": "meta", "saved_activations_by_component": block(components),
            "categories_at_peak": block(terms[:-1]),
            "peak_bytes": dict(zip(columns, peak[1:4]), phase=peak[0].split("(")[1].rstrip(")"), why=peak[4])}


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    check_work(spec, "meta", args.allow_long)
    components, terms = explanation_rows(spec)
    if args.json:
        print(json.dumps(as_json(spec, components, terms), indent=2))
        return 0
    table = markdown_table if args.markdown else terminal_table
    print(f"{spec.model.name}: {spec.setup_text()}, AdamW {spec.setup.optimizer}; measured on meta\n")
    print("\n".join(table("saved activations (all layers)", components)))
    print()
    print("\n".join(table("at the peak", terms)))
    return 0
