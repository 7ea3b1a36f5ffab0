"""`audit`: do the five seed answers' GPT-2 XL figures follow from their own formulas, and what is true?

Beside each answer: our exact model's figures and the figures measured on meta (a GPT-2 XL step really run on
meta tensors; the largest batch in 80 GB whose measured peak fits). Plain text within 120 columns (tables split
into parts that repeat their key columns), the Markdown (--markdown, as --out writes audit.md), or JSON.

`audit --formula-set NAME` (a built-in set or a .py file): that set's assumptions that differ from what PyTorch
does, measured on the setup it declares (profiler.experiments.assumptions)."""
from __future__ import annotations

import argparse
import json
import pathlib

from analytic.audit import audit, to_markdown
from profiler.commands.options import add_allow_long_argument, check_work
from profiler.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--markdown", action="store_true",
                        help="print the Markdown (wide tables, to paste) instead of text within 120 columns")
    parser.add_argument("--out", type=pathlib.Path,
                        help="also write audit.md and audit.json into this folder (never over a file the tool "
                             "did not write)")
    parser.add_argument("--no-measure", action="store_true",
                        help="leave out the measured block (it runs about a dozen GPT-2 XL steps on meta)")
    parser.add_argument("--formula-set", metavar="NAME|FILE.py",
                        help="audit this formula set instead of the seeds: which of its assumptions differ from "
                             "what PyTorch does, measured on meta on the setup it declares")
    parser.add_argument("--model", dest="source", metavar="SOURCE",
                        help="with --formula-set: audit it against this implementation (FILE.py:NAME, "
                             "package.module:NAME, hf:gpt2, hf:llama; see `measure --help`) at the problem's sizes "
                             "or --preset's")
    parser.add_argument("--optimizer-class", metavar="FILE.py:NAME",
                        help="with --formula-set: your own torch.optim.Optimizer subclass in place of AdamW")
    parser.add_argument("--preset", help="with --formula-set: the audited sizes (default: the problem's, GPT-2 XL)")
    add_allow_long_argument(parser)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs no torch
    from profiler.experiments.truth import truth_blocks
    from profiler.reports.folder import check, claim
    from profiler.reports.tables import markdown_for_terminal

    files = ["audit.md", "audit.json"]
    if not args.formula_set and (args.source or args.optimizer_class or args.preset):
        raise UsageError("--model, --optimizer-class and --preset choose what a --formula-set is audited against; "
                         "the seeds are audited on the problem's GPT-2 XL")
    if args.out is not None:
        check(args.out, files, "--out")  # a bad folder fails before the measurements
    if args.formula_set:
        from analytic.formula_sets import formula_sets
        from analytic.textbook import PROBLEM
        from model.config import preset, source_arch
        from profiler.experiments import assumptions

        base = preset(args.preset) if args.preset else PROBLEM.config
        if args.source:
            base = base.replace(source=args.source, **({"arch": source_arch(args.source)}
                                                       if source_arch(args.source) else {}))
        optimizer_class = args.optimizer_class or ""
        (module,) = formula_sets([args.formula_set]).values()  # a bad set fails here, before the measurements
        check_work(assumptions.audited_spec(module, base, optimizer_class=optimizer_class), "meta", args.allow_long,
                   "each of its steps")
        result = assumptions.audit_formula_set(args.formula_set, base, optimizer_class=optimizer_class)
        markdown = assumptions.to_markdown(result)
    else:
        result = audit(extra_blocks=truth_blocks(with_measurement=not args.no_measure))
        markdown = to_markdown(result)
    document = json.dumps(result, indent=2, default=float)
    if args.out is not None:
        out = claim(args.out, files, "--out")
        (out / "audit.md").write_text(markdown)
        (out / "audit.json").write_text(document + "\n")
    if args.json:
        print(document)
    else:
        print(markdown if args.markdown else markdown_for_terminal(markdown), end="")
    return 0
