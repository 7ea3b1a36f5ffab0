"""`audit`: do the five seed answers' GPT-2 XL figures follow from their own formulas? Markdown or JSON."""
from __future__ import annotations

import argparse
import json
import pathlib

from analytic.audit import audit, to_markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of Markdown")
    parser.add_argument("--out", type=pathlib.Path, help="also write audit.md and audit.json into this folder")


def run(args: argparse.Namespace) -> int:
    result = audit()
    markdown, document = to_markdown(result), json.dumps(result, indent=2)
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "audit.md").write_text(markdown)
        (args.out / "audit.json").write_text(document + "\n")
    print(document if args.json else markdown, end="\n" if args.json else "")
    return 0
