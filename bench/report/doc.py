"""A report as a list of blocks, written once and rendered twice: as markdown
(``report.md``, ``capacity.md``) and as an HTML page (``report.html``).

Text in blocks may use the reports' little inline markdown: ``**bold**``,
``*emphasis*`` and ```code```; :func:`inline_html` is the one converter.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report.fmt import md_cell


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    css: str | None = None  #: HTML class (``ok``: the green box)


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]
    css: str | None = None  #: HTML class of a box around the list (``warn``)


@dataclass(frozen=True)
class Image:
    title: str
    src: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str


Cell = str | Link


@dataclass(frozen=True)
class Table:
    """``header`` None: a key/value table whose first column heads each row."""

    header: Sequence[str] | None
    rows: Sequence[Sequence[Cell]]
    align: str  #: one letter per column: ``l`` left, ``r`` right (numbers)
    flag_column: int | None = None  #: a row whose cell here is not empty is highlighted in HTML


Block = Heading | Para | Bullets | Image | Table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
tr.flag td { background: #fff6e0; }
.warn { background: #fff3cd; border: 1px solid #e0c36b; padding: 0.5em 1em; }
.ok { background: #e8f5e9; border: 1px solid #9ccc9f; padding: 0.5em 1em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def inline_html(text: str) -> str:
    """Escape, then turn the inline markdown into HTML."""
    out = html.escape(text)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _EM.sub(r"<em>\1</em>", out)


# ---------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------


def _md_text(cell: Cell) -> str:
    return f"[{cell.text}]({cell.href})" if isinstance(cell, Link) else cell


def _md_table(t: Table) -> list[str]:
    width = len(t.align)
    head = "|" + " |" * width if t.header is None else "| " + " | ".join(t.header) + " |"
    lines = [head, "|" + "|".join("---:" if a == "r" else "---" for a in t.align) + "|"]
    lines += ["| " + " | ".join(md_cell(_md_text(c)) for c in row) + " |" for row in t.rows]
    return lines


def _md_block(b: Block) -> list[str]:
    if isinstance(b, Heading):
        return ["#" * b.level + " " + b.text]
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, Image):
        return [f"![{b.title}]({b.src})"]
    return _md_table(b)


def to_markdown(blocks: Sequence[Block]) -> str:
    """Each block, then a blank line."""
    lines: list[str] = []
    for b in blocks:
        lines += [*_md_block(b), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------


def _html_cell(cell: Cell, tag: str, numeric: bool) -> str:
    cls = ' class="n"' if numeric else ""
    if isinstance(cell, Link):
        return f'<{tag}{cls}><a href="{html.escape(cell.href)}">{html.escape(cell.text)}</a></{tag}>'
    return f"<{tag}{cls}>{html.escape(cell)}</{tag}>"


def _html_table(t: Table) -> str:
    out = ["<table>"]
    if t.header is not None:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
    for row in t.rows:
        flagged = t.flag_column is not None and row[t.flag_column] != ""
        cells = [
            _html_cell(c, "th" if t.header is None and i == 0 else "td", t.align[i] == "r") for i, c in enumerate(row)
        ]
        out.append(('<tr class="flag">' if flagged else "<tr>") + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _html_block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{html.escape(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        cls = f' class="{b.css}"' if b.css else ""
        return f"<p{cls}>{inline_html(b.text)}</p>"
    if isinstance(b, Bullets):
        items = "<ul>" + "".join(f"<li>{inline_html(item)}</li>" for item in b.items) + "</ul>"
        return f'<div class="{b.css}">{items}</div>' if b.css else items
    if isinstance(b, Image):
        return f'<img src="{html.escape(b.src)}" alt="{html.escape(b.title)}">'
    return _html_table(b)


def to_html(title: str, blocks: Sequence[Block]) -> str:
    """A whole page: the title, then every block."""
    page = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        *(_html_block(b) for b in blocks),
        "</body></html>",
    ]
    return "\n".join(page) + "\n"
