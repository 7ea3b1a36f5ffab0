"""`explain`: for each component and memory term, the textbook's bytes, ours, the measured bytes (on meta), and
one line on why they differ. With --against SOURCE: the difference between two implementations (--model and
SOURCE, `builtin` for our block) as formulas, from the exact models derived from traces of each
(analytic.exact.derivation.any_model): parameters, saved activations per layer and outside the layers, by op,
and each one's peak and largest batch in a budget."""
from __future__ import annotations

import argparse
import json
import textwrap

from analytic import textbook
from analytic.exact.explain import WHY_COMPONENT, why_term
from analytic.units import DEFAULT_BUDGET, format_bytes, parse_bytes
from model.config import BUILTIN
from model.vocabulary import LAYER_COMPONENTS, components_of
from profiler.commands.options import (add_allow_long_argument, add_config_arguments, check_work,
                                       refuse_fused_on_meta, spec_from_args)
from profiler.errors import UsageError
from profiler.reports.tables import WIDTH, render, wrapped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--markdown", action="store_true",
                        help="Markdown tables, the derived formula and the reason in a column (default: a table of "
                             "120 columns, each row's formula and reason wrapped under it)")
    parser.add_argument("--against", metavar="SOURCE",
                        help="another implementation (FILE.py:NAME, hf:gpt2, builtin for our block): what --model "
                             "keeps beyond it, as formulas derived from traces of both")
    parser.add_argument("--budget", default=DEFAULT_BUDGET,
                        help=f"with --against, the budget of the largest batch (default {DEFAULT_BUDGET})")
    add_allow_long_argument(parser)


def explanation_rows(spec) -> tuple[list[list], list[list]]:
    """(component rows, term rows): [name, textbook, exact, measured, why]; bytes, None where absent."""
    # imported here, not at the top, so that `--help` needs no torch
    from analytic.exact.formula import formula_key, readable, saved_by_component
    from analytic.formula_sets import exact_set
    from profiler.measuring.measure import measure

    measured = measure(spec, "meta", count_flops=False, progress=True).measured
    if spec.model.source != BUILTIN:
        return user_rows(spec, measured)
    ours = exact_set().predict(spec)
    theirs = textbook.predict(spec)
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


def user_rows(spec, measured: dict) -> tuple[list[list], list[list]]:
    """The rows of a user's or Hugging Face model: what each of its modules keeps (its own module paths, which no
    formula set names) and what each op keeps, then the terms at the peak beside the textbook's where the textbook
    describes the model (the exact set is derived for the built-in model only)."""
    from analytic.formula_sets import describes

    theirs = textbook.predict(spec) if describes(textbook, spec) else {}
    total = measured["saved_activations_bytes"] or 1
    components = [[name, None, None, value, f"{kind}, {value / total:.1%} of the saved activations"]
                  for kind, figures in (("module", measured["saved_activations_by_component"]),
                                        ("op", measured["saved_activations_by_op"]))
                  for name, value in sorted(figures.items(), key=lambda item: -item[1]) if value]
    terms = [[name, theirs.get("categories_at_peak", {}).get(name), None, measured["categories_at_peak"][name],
              why_term(name, spec.setup)]
             for name in ("parameters", "gradients", "optimizer_state", "saved_activations", "optimizer_temporaries")]
    terms.append([f"peak ({measured['peak_phase']})", theirs.get("peak_bytes"), None, measured["peak_bytes"],
                  why_term("peak", spec.setup)])
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
    saved = {"saved_activations_by_component": block(components)}
    if spec.model.source != BUILTIN:  # its rows: modules, then ops (user_rows)
        saved = {field: block([row for row in components if row[4].startswith(kind + ",")])
                 for field, kind in (("saved_activations_by_component", "module"), ("saved_activations_by_op", "op"))}
    return {"config": spec.flat(), "batch_size": spec.batch_size, "optimizer": spec.setup.optimizer,
            "device": "meta", **saved,
            "categories_at_peak": block(terms[:-1]),
            "peak_bytes": dict(zip(columns, peak[1:4]), phase=peak[0].split("(")[1].rstrip(")"), why=peak[4])}


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    if args.against:
        return run_against(args, spec)
    refuse_fused_on_meta(spec, "meta")
    check_work(spec, "meta", args.allow_long)
    components, terms = explanation_rows(spec)
    if args.json:
        print(json.dumps(as_json(spec, components, terms), indent=2))
        return 0
    table = markdown_table if args.markdown else terminal_table
    print(wrapped(f"{spec.model.name}: {spec.setup_text()}, {spec.setup.optimizer_text}; measured on meta") + "\n")
    title = "saved activations (all layers)"
    if spec.model.source != BUILTIN:
        title = "saved by module and by op (all layers)"
        print(wrapped(f"model {spec.model.source}: what each of its modules (by path within a layer) and each op "
                      "keeps; the exact set is derived for the built-in model only") + "\n")
    print("\n".join(table(title, components)))
    print()
    print("\n".join(table("at the peak", terms)))
    return 0


MAX_BATCH_SEARCHED = 1 << 16


def against_document(spec, against: str, budget: int) -> dict:
    """The difference of spec's model against `against` (module docstring) as data: expressions as Python text,
    the figures at spec's sizes (B at least 2, the derived models' domain), the largest batch in `budget` from the
    derived model, or measured where it is below 2 (1, or 0 where one sequence does not fit)."""
    import numpy as np

    from analytic.exact.derivation.fit import DerivationError
    from analytic.exact.derivation.model_cache import derived_model
    from analytic.exact.formula import python_expression
    from analytic.exact.model_programs import ModelPrograms, difference

    specs = {"model": spec, "against": spec.replace(source=against)}
    programs = {}
    for role, one in specs.items():
        try:
            document = derived_model(one)
        except DerivationError as error:
            raise UsageError(f"no exact formula of {one.model.source}: {error}") from None
        if document["verified"]["differences"]:
            raise UsageError(f"the formula derived from {one.model.source} is not exact at held-out sizes "
                             f"({document['verified']['differences'][0]})")
        programs[role] = ModelPrograms(document)
    config = spec.model
    sizes = {"B": max(2, spec.batch_size), "T": config.context_length, "H": config.num_heads,
             "Dh": config.d_model // config.num_heads, "F": config.d_ff, "V": config.vocab_size,
             "L": config.num_layers, "G": config.kv_heads}
    batches = np.arange(2, MAX_BATCH_SEARCHED)
    figures = {}
    for role, model in programs.items():
        peak = int(model.figures(sizes)["peak_bytes"])
        peaks = model.figures(dict(sizes, B=batches))["peak_bytes"]
        fits = batches[peaks <= budget]
        if fits.size:
            largest = int(fits.max())
        else:  # B = 1 is outside the derived domain: measured
            from profiler.measuring.measure import step_phases

            largest = int(step_phases(specs[role].replace(batch_size=1))["peak_bytes"] <= budget)
        figures[role] = {"source": specs[role].model.source, "peak_bytes": peak, "max_batch": largest}
    found = difference(programs["model"], programs["against"])
    text = {"parameters": python_expression(found["parameters"])}
    for where in ("per_layer", "outside_layers"):
        text[where] = {"total": python_expression(found[where]["total"]),
                       "by_op": {op: python_expression(value) for op, value in found[where]["by_op"].items()}}
    return {"config": spec.flat(), "batch_size": sizes["B"], "budget_bytes": budget, **figures,
            "difference": text, "held_out_sizes": {role: len(model.document["verified"]["sizes"])
                                                   for role, model in programs.items()}}


def run_against(args: argparse.Namespace, spec) -> int:
    from analytic.exact.formula import readable
    import sympy as sp

    budget = parse_bytes(args.budget)
    document = against_document(spec, args.against, budget)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    mine, theirs = document["model"], document["against"]

    def shown(text: str) -> str:
        return readable(sp.sympify(text, locals={name: sp.Symbol(name, positive=True, integer=True)
                                                 for name in "LBTDHFV"}))

    lines = [wrapped(f"{mine['source']} against {theirs['source']}: {spec.model.name}, {spec.setup_text()}; "
                     f"both derived from traces of their code, each exact at {document['held_out_sizes']['model']} "
                     f"held-out sizes. What {mine['source']} keeps beyond {theirs['source']} (negative: less), "
                     "in bytes:"), "",
             f"parameters: {shown(document['difference']['parameters'])}"]
    for where, title in (("per_layer", "saved activations per layer"),
                         ("outside_layers", "saved activations outside the layers")):
        block = document["difference"][where]
        lines.append(f"{title}: {shown(block['total'])}")
        lines += [f"    {op}: {shown(value)}" for op, value in block["by_op"].items()]
    lines += ["", f"at B = {document['batch_size']}:"]
    for role in ("model", "against"):
        one = document[role]
        lines.append(f"    {one['source']}: peak {format_bytes(one['peak_bytes'], 'GiB', 3)}, largest batch in "
                     f"{args.budget}: {one['max_batch'] or 'none'}")
    print("\n".join(lines))
    return 0
