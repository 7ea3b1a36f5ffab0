"""A report as a list of blocks, written as Markdown (images beside it) and as one self-contained HTML page.

Blocks: Heading(text), Text(markdown), Table(DataFrame of display strings), Facts({name: value}),
Image(file name, PNG bytes, caption). Markdown inside Text is the small subset reports use: headings, pipe
tables, bullet lists, `code` and paragraphs.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    markdown: str


@dataclass
class Table:
    frame: pd.DataFrame


@dataclass
class Facts:
    items: dict[str, str]


@dataclass
class Image:
    name: str
    png: bytes
    caption: str


Block = Heading | Text | Table | Facts | Image

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: min(1500px, 96vw); margin: 2em auto;
       padding: 0 1.5em; color: #1d2330; line-height: 1.45; }
h1 { border-bottom: 2px solid #4c72b0; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #d5dae3; padding-bottom: .2em; }
.scroll { overflow-x: auto; margin: 1em 0; border: 1px solid #e3e7ee; border-radius: 4px; }
table { border-collapse: collapse; font-size: 12.5px; white-space: nowrap; }
th, td { padding: 4px 5px; border-bottom: 1px solid #e3e7ee; text-align: right; }
th, td.wrap { white-space: normal; } th.prose, td.prose { white-space: normal; min-width: 12em; text-align: left; }
th { background: #f2f4f8; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafbfd; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ee; }
figcaption { color: #5a6272; font-size: 13px; }
code { background: #f2f4f8; padding: 0 3px; border-radius: 3px; }
"""


def markdown_table(frame: pd.DataFrame) -> str:
    cells = [[str(c) for c in frame.columns]] + [["" if pd.isna(v) else str(v) for v in row]
                                                 for row in frame.itertuples(index=False)]
    escape = [[c.replace("|", "\\|") for c in row] for row in cells]
    lines = ["| " + " | ".join(escape[0]) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in escape[1:]])


def to_markdown(title: str, blocks: list[Block], image_dir: str) -> str:
    parts = [f"# {title}"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            parts.append(block.markdown)
        elif isinstance(block, Table):
            parts.append(markdown_table(block.frame))
        elif isinstance(block, Facts):
            parts.append("\n".join(f"- **{name}**: {value}" for name, value in block.items.items()))
        elif isinstance(block, Image):
            parts.append(f"![{block.caption}]({image_dir}/{block.name})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


PROSE = 40  # characters: a cell longer than this is prose, wrapped in a column of at least 12em (class "prose")
WORDS = 16  # a shorter cell of words (a label, "26.20 GB (24.40 GiB)") longer than this may wrap (class "wrap")


def _cell(tag: str, value) -> str:
    """One cell; a figure ("1,637,176,000", "12.3 % / 29 %") never wraps, text may where the table is too wide."""
    text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    kind = "prose" if len(text) > PROSE else "wrap" if len(text) > WORDS and " " in text and any(
        c.isalpha() for c in text) else ""
    attribute = f' class="{kind}"' if kind else ""
    return f"<{tag}{attribute}>{html.escape(text)}</{tag}>"


def _table_html(frame: pd.DataFrame) -> str:
    """A table whose figures stay on one line while its long text cells wrap, so that every figure is in view."""
    head = "<tr>" + "".join(_cell("th", column) for column in frame.columns) + "</tr>"
    rows = ["<tr>" + "".join(_cell("td", value) for value in row) + "</tr>" for row in frame.itertuples(index=False)]
    return (f'<div class="scroll"><table><thead>{head}</thead><tbody>' + "".join(rows)
            + "</tbody></table></div>")


def markdown_to_html(text: str) -> str:
    """The markdown subset of Text blocks (and analytic.audit.to_markdown) as HTML."""
    out, table, items, paragraph = [], [], [], []

    def flush() -> None:
        if table:
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table
                    if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())]
            out.append(_table_html(pd.DataFrame(rows[1:], columns=rows[0])) if rows else "")
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
        table.clear(), items.clear(), paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"(#{1,6})\s+(.*)", stripped)
        kind = "table" if stripped.startswith("|") else "item" if stripped[:2] in ("- ", "* ") else "text"
        if not stripped or heading or (kind == "table") != bool(table) or (kind == "item") != bool(items):
            flush()
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif kind == "table":
            table.append(stripped)
        elif kind == "item":
            items.append(stripped[2:])
        elif stripped:
            paragraph.append(stripped)
    flush()
    return "\n".join(out)


def to_html(title: str, blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(markdown_to_html(block.markdown))
        elif isinstance(block, Table):
            parts.append(_table_html(block.frame))
        elif isinstance(block, Facts):
            parts.append('<dl class="facts">' + "".join(
                f"<dt>{html.escape(k)}</dt><dd>{_inline(v)}</dd>" for k, v in block.items.items()) + "</dl>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode()
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(parts)
            + "\n</body></html>\n")


def file_names(blocks: list[Block], stem: str = "report", image_dir: str = "plots") -> list[str]:
    """The files `write` writes, relative to its folder."""
    return [f"{stem}.md", f"{stem}.html"] + [f"{image_dir}/{block.name}" for block in blocks
                                             if isinstance(block, Image)]


def write(out_dir: Path, title: str, blocks: list[Block], stem: str = "report",
          image_dir: str = "plots") -> list[Path]:
    """out_dir/<stem>.md with out_dir/<image_dir>/*.png beside it, and the self-contained out_dir/<stem>.html."""
    (out_dir / image_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for block in blocks:
        if isinstance(block, Image):
            path = out_dir / image_dir / block.name
            path.write_bytes(block.png)
            paths.append(path)
    markdown, page = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    markdown.write_text(to_markdown(title, blocks, image_dir))
    page.write_text(to_html(title, blocks))
    return [markdown, page] + paths
