"""`measure`: run one training step (meta, cpu or cuda) and print what was measured beside every formula set's
prediction, with the relative error of each term."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from profiler.commands.options import (add_allow_long_argument, add_config_arguments, add_device_argument,
                                       add_formula_set_argument, check_work, load_formula_sets, new_file,
                                       refuse_fused_on_meta, spec_from_args)
from profiler.errors import UsageError

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_device_argument(parser)
    add_formula_set_argument(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document: Measurement.to_dict() and every set's predictions")
    parser.add_argument("--all-terms", action="store_true", help="every term, not only the headline ones")
    parser.add_argument("--wide", action="store_true",
                        help="each set's predicted value beside its relative error (default: the errors alone, "
                             "to fit 120 columns)")
    parser.add_argument("--autocast-policy", choices=("cuda", "cpu"), default="cuda",
                        help="with --autocast on meta, whose autocast rules the simulation applies: cuda (default, "
                             "what a GPU runs) or cpu (to compare with --device cpu, which runs real CPU autocast)")
    parser.add_argument("--snapshot", metavar="FILE.pickle",
                        help="also write the step's memory snapshot for PyTorch's memory_viz (python -m "
                             "torch.cuda._memory_viz trace_plot FILE.pickle -o FILE.html): on cuda the "
                             "allocator's own, on meta and cpu the tracked allocations in its format")
    add_allow_long_argument(parser)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs neither torch nor pandas
    import pandas as pd

    from analytic.figures import flatten, with_model_states
    from profiler.measuring.measure import measure, resolve_device
    from profiler.reports.compare import comparison_rows, predictions, training_days_at_measured_mfu
    from profiler.reports.tables import (HEADLINE, SHARDED_HEADLINE, UNBOUNDED_MEANS, WIDTH, fit_width, format_cell,
                                         relative_cell, shows_unbounded, wrapped)

    spec = spec_from_args(args, sharded=True)
    sharded = spec.setup.shard != "none"
    load_formula_sets(args)
    refuse_fused_on_meta(spec, resolve_device(args.device), "--device cpu or cuda")
    if args.snapshot:
        new_file("--snapshot", args.snapshot)
    check_work(spec, resolve_device(args.device), args.allow_long)
    if sharded and args.device == "cpu":
        result = gloo_rank_zero(spec, args)
    else:
        result = measure(spec, args.device, snapshot_path=args.snapshot, autocast_policy=args.autocast_policy,
                         progress=True).to_dict()
    predicted = predictions(result)
    days = training_days_at_measured_mfu(result)
    if args.json:
        document = {**result, "predicted": predicted}
        if days is not None:
            document["training_days_at_measured_mfu"] = days
        print(json.dumps(document, indent=2, default=str))
        return 0
    rows = pd.DataFrame(comparison_rows(result["measured"], predicted),
                        columns=["formula_set", "term", "predicted", "measured", "relative_error"])
    headline = HEADLINE + (SHARDED_HEADLINE if sharded else ())
    if not args.all_terms:
        rows = rows[rows.term.isin(headline)]
    table = rows.pivot(index="term", columns="formula_set", values=["predicted", "relative_error"])
    flat = flatten(with_model_states(result["measured"]))
    terms = [term for term in headline if term in flat] if not args.all_terms else list(table.index)
    order = terms + [t for t in table.index if t not in terms]  # measured terms no set predicts shown too
    measured = {term: flat[term] for term in order}
    where = f"rank {result['measured']['rank']} measured" if sharded else "measured"
    if sharded and result["device"] == "cpu":
        where += f" in a gloo group of {spec.setup.world_size} processes"
    lines = [wrapped(f"{spec.model.name}: {spec.setup_text()}, {spec.setup.optimizer_text}, {where} on "
                     f"{result['device_name']} (torch {result['torch_version']}); peak in the "
                     f"{result['measured']['peak_phase']} phase"), ""]
    columns = {}  # set -> its cell per term, for the sets that predict a shown term
    for name in sorted(predicted, key=lambda name: name != "exact"):  # exact first, the others as registered
        column = []
        for term in order:
            value = table.loc[term, ("predicted", name)] if ("predicted", name) in table.columns and \
                term in table.index else None
            error = (None if value is None or pd.isna(value)
                     else relative_cell(table.loc[term, ("relative_error", name)]))
            column.append("—" if error is None else f"{format_cell(term, value)} ({error})" if args.wide else error)
        if any(cell != "—" for cell in column):
            columns[name] = column
    fixed = [["term", *order], ["measured", *(format_cell(term, measured[term]) for term in order)]]
    lines.append(fit_width(fixed, columns, None if args.wide else WIDTH))
    if shows_unbounded(cell for column in columns.values() for cell in column):
        lines.append(wrapped(UNBOUNDED_MEANS))
    if days is not None:
        speed = result["measured"]["speed"]
        lines.append(f"\nstep {speed['step_seconds'] * 1e3:.1f} ms, MFU {speed['mfu']:.1%}: the problem's run "
                     f"takes {days:,.1f} days at this MFU")
    if args.snapshot:
        html = shlex.quote(str(Path(args.snapshot).with_suffix(".html")))
        lines.append("\n" + wrapped(f"memory snapshot: {args.snapshot}; drop it on https://pytorch.org/memory_viz, or "
                                    "draw it with:"))
        command = f"  python -m torch.cuda._memory_viz trace_plot {shlex.quote(args.snapshot)}"
        lines.append(f"{command} -o {html}" if len(command) + len(html) + 4 <= WIDTH
                     else f"{command} \\\n    -o {html}")  # a shell line continued, as one pastes it
    print("\n".join(lines))
    return 0


def gloo_rank_zero(spec, args: argparse.Namespace) -> dict:
    """A sharded step run for real on CPU: a gloo group of world_size processes on this machine, each measuring
    itself (profiler.measuring.ranks, FLOPs not counted); rank 0's measurement, the rank the simulation and the
    exact set describe by default."""
    from profiler.measuring.ranks import measure_ranks

    if args.snapshot:
        raise UsageError("--snapshot of a sharded step is written from its simulation (--device meta), not from a "
                         "gloo group")
    print(f"running {spec.setup.world_size} processes in a gloo group on this machine (each holds its shard for "
          f"real)...", file=sys.stderr)
    return measure_ranks(spec)[0]
