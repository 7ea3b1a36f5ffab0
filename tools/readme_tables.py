"""Writes the README's generated tables from the committed reports (never by hand):

    python tools/readme_tables.py            # rewrite the blocks between the README's markers
    python tools/readme_tables.py --check    # exit 1 if the README differs (tests/test_readme.py does this)

"GPT-2 XL in 80 GB: max batch per setup" comes from reports/setups-meta (profiler.reporting.report.setups_table):
measured on meta, with the exact and textbook sets' answers recomputed by today's formulas.
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUPS_FOLDER = ROOT / "reports" / "setups-meta"
START, END = "<!-- setups-table:start (tools/readme_tables.py) -->", "<!-- setups-table:end -->"


def setups_block() -> str:
    from profiler.reporting.render import markdown_table
    from profiler.reporting.report import load, setups_table

    meta, rows = load(SETUPS_FOLDER)
    table = setups_table(rows)
    return (f"{START}\n{markdown_table(table)}\n\nMeasured on {meta['device']} with torch {meta['torch_version']} "
            f"on {meta['date'][:10]} ([report](reports/setups-meta/report.md)).\n{END}")


def rewritten(text: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block")
    return pattern.sub(lambda _: setups_block(), text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = README.read_text()
    new = rewritten(text)
    if args.check:
        if new != text:
            print("README.md's generated tables differ from the reports: run python tools/readme_tables.py")
            sys.exit(1)
    elif new != text:
        README.write_text(new)
        print(README)
