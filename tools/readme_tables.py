"""Writes the generated tables of the pages the README links (docs/) from the committed reports (never by hand):

    python tools/readme_tables.py            # rewrite the blocks between the pages' markers
    python tools/readme_tables.py --check    # exit 1 if a page differs (tests/test_readme.py does this)

docs/findings.md's "GPT-2 XL in 80 GB: max batch per setup" comes from reports/setups-meta
(profiler.reports.report.setups_table): measured on meta, with the exact and textbook sets' answers recomputed by
today's formulas. docs/gpu-runs.md's table comes from reports/h200-session/max-batch.jsonl, the JSON that `profiler
max-batch --device cuda --json` printed on the GPU (tools/gpu_session.sh), one line per setup and allocator setting.
docs/sharded.md's tables of one rank come from reports/dist-meta (profiler.reports.sharded.rank_table, and
tensor_parallel_table for its tensor-parallel points).
docs/implementations.md's table comes from reports/implementations-meta (profiler.reports.implementations), a
sweep of examples/implementations.toml, with every formula set graded by today's formulas.
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy's
SETUPS_FOLDER = ROOT / "reports" / "setups-meta"
START, END = "<!-- setups-table:start (tools/readme_tables.py) -->", "<!-- setups-table:end -->"
GPU_FILE = ROOT / "reports" / "h200-session" / "max-batch.jsonl"
GPU_START, GPU_END = "<!-- gpu-max-batch:start (tools/readme_tables.py) -->", "<!-- gpu-max-batch:end -->"
DIST_FOLDER = ROOT / "reports" / "dist-meta"
DIST_START, DIST_END = "<!-- dist-table:start (tools/readme_tables.py) -->", "<!-- dist-table:end -->"
TP_START, TP_END = "<!-- tp-table:start (tools/readme_tables.py) -->", "<!-- tp-table:end -->"
IMPLEMENTATIONS_FOLDER = ROOT / "reports" / "implementations-meta"
IMPLEMENTATIONS_START = "<!-- implementations-table:start (tools/readme_tables.py) -->"
IMPLEMENTATIONS_END = "<!-- implementations-table:end -->"


def setups_block() -> str:
    from profiler.reports.render import markdown_table
    from profiler.reports.report import load, setups_table

    meta, rows = load(SETUPS_FOLDER)
    table = setups_table(rows)
    return (f"{START}\n{markdown_table(table)}\n\nMeasured on {meta['device']} with torch {meta['torch_version']} "
            f"on {meta['date'][:10]} ([report](../reports/setups-meta/report.md)).\n{END}")


def gpu_block() -> str:
    """Per setup: the exact set's answer, and the batch that ran on the GPU under the budget with the default
    allocator and with expandable segments (— where that setting was not run)."""
    import json

    import pandas as pd

    from profiler.commands.max_batch import uses_expandable_segments
    from profiler.reports.matrix import setup_label
    from profiler.reports.render import markdown_table

    table: dict[tuple[str, str], dict[str, object]] = {}
    for line in GPU_FILE.read_text().splitlines():
        answer = json.loads(line)
        row = table.setdefault((answer["config"]["name"], setup_label(answer["config"])),
                               {"exact": answer["predicted"]["exact"]})
        allocator = "expandable segments" if uses_expandable_segments(answer.get("alloc_conf")) else "default"
        row[f"on the GPU, {allocator} allocator"] = answer["max_batch"]
    frame = pd.DataFrame([{"model": model, "setup": setup, **row} for (model, setup), row in table.items()])
    frame = frame.reindex(columns=["model", "setup", "exact", "on the GPU, default allocator",
                                   "on the GPU, expandable segments allocator"])
    frame[frame.columns[2:]] = frame[frame.columns[2:]].astype("Int64")
    return (f"{GPU_START}\n{markdown_table(frame.astype(object).where(frame.notna(), '—'))}\n{GPU_END}")


def dist_block() -> str | None:
    """One rank of FSDP2 or DDP per row of reports/dist-meta (profiler.reports.sharded.rank_table), the exact
    set and ZeRO graded by today's formulas (the exact rank's programs derived on first use, as the CLI does);
    None on a torch that cannot simulate a rank (it cannot derive the exact rank's programs either), which
    leaves docs/sharded.md's table as it is, saying so on stderr."""
    from profiler.measuring.sharded import unsupported

    why = unsupported()
    if why is not None:
        print(f"docs/sharded.md's table left as it is: {why}", file=sys.stderr)
        return None
    from analytic.exact.derivation.on_demand import deriving_programs
    from analytic.formula_sets import use_exact_programs
    from profiler.reports.render import markdown_table
    from profiler.reports.report import load, with_predictions
    from profiler.reports.sharded import displayed, rank_table

    use_exact_programs(deriving_programs(quiet=True))
    meta, rows = load(DIST_FOLDER)
    data_parallel = [row for row in rows if row["config"].get("tensor_parallel", 1) == 1]  # t > 1: the tp table
    table = displayed(rank_table(with_predictions(data_parallel))).drop(columns=["rank"])
    return (f"{DIST_START}\n{markdown_table(table)}\n\nRank 0, simulated on {meta['device']} with torch "
            f"{meta['torch_version']} on {meta['date'][:10]} ([report](../reports/dist-meta/report.md)).\n{DIST_END}")


def tensor_parallel_block() -> str | None:
    """The tensor-parallel points of reports/dist-meta with their t = 1 baselines (profiler.reports.sharded.
    tensor_parallel_table), Korthikanti et al. and Megatron-LM graded by today's formulas; None where a rank cannot
    be simulated (dist_block)."""
    from profiler.measuring.sharded import unsupported

    if unsupported() is not None:
        return None
    from profiler.reports.render import markdown_table
    from profiler.reports.report import load, with_predictions
    from profiler.reports.sharded import displayed_tensor_parallel, tensor_parallel_table

    meta, rows = load(DIST_FOLDER)
    table = displayed_tensor_parallel(tensor_parallel_table(with_predictions(rows)))
    return (f"{TP_START}\n{markdown_table(table)}\n\nRank 0, simulated on {meta['device']} with torch "
            f"{meta['torch_version']} on {meta['date'][:10]} ([report](../reports/dist-meta/report.md)).\n{TP_END}")


def implementations_block() -> str:
    """Each model as each implementation writes it, measured on meta, every formula set that describes it graded
    on its peak (profiler.reports.implementations)."""
    from profiler.reports.implementations import displayed, implementations_table
    from profiler.reports.render import markdown_table
    from profiler.reports.report import load, with_predictions

    meta, rows = load(IMPLEMENTATIONS_FOLDER)
    table = displayed(implementations_table(with_predictions(rows)))
    return (f"{IMPLEMENTATIONS_START}\n{markdown_table(table)}\n\nMeasured on {meta['device']} with torch "
            f"{meta['torch_version']} on {meta['date'][:10]} "
            f"([report](../reports/implementations-meta/report.md)).\n{IMPLEMENTATIONS_END}")


# the page each generated table lives in, and its markers
TABLES = {"findings.md": [(START, END, setups_block)], "gpu-runs.md": [(GPU_START, GPU_END, gpu_block)],
          "sharded.md": [(DIST_START, DIST_END, dist_block), (TP_START, TP_END, tensor_parallel_block)],
          "implementations.md": [(IMPLEMENTATIONS_START, IMPLEMENTATIONS_END, implementations_block)]}


def rewritten(page: str, text: str) -> str:
    """The text of docs/PAGE with its generated tables made again from the reports."""
    for start, end, block in TABLES[page]:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/{page} has no {start} ... {end} block")
        made = block()
        if made is not None:
            text = pattern.sub(lambda _: made, text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    differ = []
    for page in TABLES:
        path = DOCS / page
        text = path.read_text()
        new = rewritten(page, text)
        if new == text:
            continue
        differ.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(new)
            print(path)
    if args.check and differ:
        print(f"generated tables differ from the reports in {', '.join(map(str, differ))}: "
              "run python tools/readme_tables.py")
        sys.exit(1)
