"""The layout of a passage's text, with character offsets: its lines, which of them are list items or table rows, and
its tables with their header rows, row labels and column labels.

Ingestion renders tables as `cell | cell` rows (ingest/parse.py) and keeps list items and steps on lines of their
own, so lines are the unit: an answer span is always a run of whole lines, a sentence inside one, or a table cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

LineKind = Literal["text", "item", "row"]

_LINE = re.compile(r"[^\n]+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)]|[a-z][.)])\s+")
_RULE = re.compile(r"^[\s|:=+-]+$")  # a Markdown table's |---|---| line, or a ==== underline


@dataclass(frozen=True)
class Cell:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Line:
    start: int  # [start, end) in the passage text, surrounding blanks excluded
    end: int
    text: str
    kind: LineKind
    body_start: int  # where the content starts: after a list item's bullet or number
    cells: tuple[Cell, ...] = ()


@dataclass(frozen=True)
class Table:
    """Consecutive rows with the same number of cells. The header is the first row and any rows after it whose
    first cell is empty (financial tables stack a period over the years); the rest are data rows."""

    header: tuple[int, ...]  # indexes into the passage's lines
    rows: tuple[int, ...]
    columns: tuple[str, ...]  # each column's label: its header cells joined

    def row_label(self, lines: list[Line], row: int) -> str:
        return lines[row].cells[0].text


def split_lines(text: str) -> list[Line]:
    lines = []
    for match in _LINE.finditer(text):
        raw = match.group()
        if not raw.strip() or (_RULE.match(raw) and ("-" in raw or "=" in raw)):
            continue
        start = match.start() + len(raw) - len(raw.lstrip())
        end = match.start() + len(raw.rstrip())
        content = text[start:end]
        bullet = _BULLET.match(content)
        if "|" in content:
            lines.append(Line(start, end, content, "row", start, _cells(text, start, end)))
        elif bullet:
            lines.append(Line(start, end, content, "item", start + bullet.end()))
        else:
            lines.append(Line(start, end, content, "text", start))
    return _lone_rows_as_text(_without_borders(lines))


def _cells(text: str, start: int, end: int) -> tuple[Cell, ...]:
    cells, cursor = [], start
    for position in [*(m.start() for m in re.finditer(r"\|", text[start:end])), end - start]:
        a, b = cursor, start + position
        raw = text[a:b]
        left = a + len(raw) - len(raw.lstrip())
        right = a + len(raw.rstrip())
        cells.append(Cell(left, max(left, right), text[left : max(left, right)]))
        cursor = b + 1
    return tuple(cells)


def _without_borders(lines: list[Line]) -> list[Line]:
    """Markdown tables ("| a | b |") have a border pipe at each end of every row: it bounds no cell. Only runs of
    two or more such rows lose it (a single row that starts and ends with a pipe may have empty end cells)."""
    bordered = [line.kind == "row" and line.text.startswith("|") and line.text.endswith("|") for line in lines]
    out = list(lines)
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and bordered[j]:
            j += 1
        if j - i >= 2:
            for k in range(i, j):
                line = lines[k]
                out[k] = Line(line.start, line.end, line.text, "row", line.start, line.cells[1:-1])
        i = max(j, i + 1)
    return out


def _lone_rows_as_text(lines: list[Line]) -> list[Line]:
    """A row with no neighbour of the same width is a line that happens to hold a pipe (a shell command)."""
    out = []
    for i, line in enumerate(lines):
        width = len(line.cells)
        neighbours = [lines[j] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
        if line.kind == "row" and not any(n.kind == "row" and len(n.cells) == width for n in neighbours):
            line = Line(line.start, line.end, line.text, "text", line.start)
        out.append(line)
    return out


def find_tables(lines: list[Line]) -> list[Table]:
    tables, i = [], 0
    while i < len(lines):
        if lines[i].kind != "row":
            i += 1
            continue
        j = i
        while j + 1 < len(lines) and lines[j + 1].kind == "row" and len(lines[j + 1].cells) == len(lines[i].cells):
            j += 1
        tables.append(_table(lines, list(range(i, j + 1))))
        i = j + 1
    return tables


def _table(lines: list[Line], members: list[int]) -> Table:
    header = [members[0]]
    for index in members[1:-1]:
        if lines[index].cells[0].text:
            break
        header.append(index)
    width = len(lines[members[0]].cells)
    # a header row with one label over several header rows is a caption spanning every column ("Years ended
    # September 30," over "2019 | 2018"): it would name only the column it happens to sit in
    naming = [h for h in header if len(header) == 1 or sum(bool(cell.text) for cell in lines[h].cells) > 1]
    columns = tuple(
        " ".join(lines[h].cells[c].text for h in naming if lines[h].cells[c].text).strip() for c in range(width)
    )
    return Table(header=tuple(header), rows=tuple(m for m in members if m not in header), columns=columns)


def labelled_row(lines: list[Line], table: Table, row: int) -> str:
    """A data row as a sentence: each cell named by its column ("Years: 0-2; Days: 25")."""
    parts = []
    for label, cell in zip(table.columns, lines[row].cells, strict=True):
        value = " ".join(cell.text.split())
        if value:
            parts.append(f"{label}: {value}" if label else value)
    return "; ".join(parts)
