"""`explain`: for each component and memory term, the textbook's bytes, ours, the measured bytes (on meta), and
one line on why they differ."""
from __future__ import annotations

import argparse
import json

from analytic import exact, textbook
from analytic.exact.explain import WHY_COMPONENT, why_term
from analytic.units import format_bytes
from model.vocabulary import LAYER_COMPONENTS, components_of
from profiler.commands.options import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")


def explanation_rows(config, batch_size: int, optimizer: str) -> tuple[list[list], list[list]]:
    """(component rows, term rows): [name, textbook, exact, measured, why]; bytes, None where absent."""
    # imported here, not at the top, so that `--help` needs no torch
    from analytic.exact.formula import readable, saved_by_component, setup_of
    from profiler.measuring.measure import measure

    ours = exact.predict(config, batch_size, optimizer)
    theirs = textbook.predict(config, batch_size, optimizer)
    measured = measure(config, batch_size, "meta", optimizer, count_flops=False).measured
    derived = saved_by_component(setup_of(config, optimizer, batch_size))
    def formula(name: str) -> str:  # what the component saves, as derived
        return (readable(derived[name]) if name in derived else "0") + (" per layer" if name in LAYER_COMPONENTS
                                                                          else "")

    components = [[name, theirs["saved_activations_by_component"].get(name),
                   ours.get("saved_activations_by_component", {}).get(name),
                   measured["saved_activations_by_component"][name], f"{formula(name)}; {WHY_COMPONENT[name]}"]
                  for name in components_of(config)]
    terms = [[name, theirs["categories_at_peak"].get(name), ours.get("categories_at_peak", {}).get(name),
              measured["categories_at_peak"][name], why_term(name, config)]
             for name in ("parameters", "gradients", "optimizer_state", "saved_activations", "optimizer_temporaries")]
    terms.append([f"peak ({measured['peak_phase']})", theirs["peak_bytes"], ours.get("peak_bytes"),
                  measured["peak_bytes"], why_term("peak", config)])
    return components, terms


def _table(title: str, rows: list[list]) -> list[str]:
    cell = lambda value: "—" if value is None else format_bytes(value, "GiB", 3)  # noqa: E731
    lines = [f"| {title} | textbook | exact | measured | derived formula (bytes); why they differ |",
             "|---|---:|---:|---:|---|"]
    lines += [f"| {name} | {cell(a)} | {cell(b)} | {cell(c)} | {why} |" for name, a, b, c, why in rows]
    return lines


def as_json(config, args, components: list[list], terms: list[list]) -> dict:
    """The tables as one document: bytes per component and per category at the peak, under the field names of
    `measure --json` (saved_activations_by_component.<name>, categories_at_peak.<name>, peak_bytes)."""
    columns = ("textbook", "exact", "measured")

    def block(rows):
        return {name: dict(zip(columns, values), why=why) for name, *values, why in rows}

    peak = terms[-1]
    return {"config": config.to_dict(), "batch_size": args.batch_size, "optimizer": args.optimizer,
            "device": "meta", "saved_activations_by_component": block(components),
            "categories_at_peak": block(terms[:-1]),
            "peak_bytes": dict(zip(columns, peak[1:4]), phase=peak[0].split("(")[1].rstrip(")"), why=peak[4])}


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    components, terms = explanation_rows(config, args.batch_size, args.optimizer)
    if args.json:
        print(json.dumps(as_json(config, args, components, terms), indent=2))
        return 0
    print(f"{config.name}: batch {args.batch_size}, {config.dtype}, AdamW {args.optimizer}, checkpointing "
          f"{config.checkpointing}; measured on meta\n")
    print("\n".join(_table("saved activations (all layers)", components)))
    print()
    print("\n".join(_table("at the peak", terms)))
    return 0
