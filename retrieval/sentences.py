"""A passage's sentences with their offsets: the units an extractive answer is scored and quoted by.

They live in retrieval, beside the layout they are read from, because ingestion embeds them ahead of any question
(`PENNY_SENTENCE_VECTORS`) and the answer scores the very same texts: both must cut a passage the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.text_layout import find_tables, labelled_row, split_lines

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote; lines and list items
# are sentences of their own (handbooks are full of bullet points and table rows).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_MIN_CHARS = 12


@dataclass(frozen=True)
class Sentence:
    """A scoring unit of a passage: a sentence of a line, a list item, or a table row labelled by its header."""

    text: str  # as scored and shown
    start: int  # [start, end) in the passage text
    end: int
    line: int  # index of its line in text_layout.split_lines(passage text)


def sentences(text: str) -> list[Sentence]:
    """The passage's sentences with their offsets. A table's header row is no sentence (a bare header answers
    nothing); its data rows are, labelled with the header's cells, since a bare row ("3-5 | 26") means nothing."""
    lines = split_lines(text)
    row_of = {row: table for table in find_tables(lines) for row in (*table.header, *table.rows)}
    found: list[Sentence] = []
    for index, line in enumerate(lines):
        table = row_of.get(index)
        if table is not None:
            if index in table.rows:
                found.append(Sentence(labelled_row(lines, table, index), line.start, line.end, index))
            continue
        body = text[line.body_start : line.end].strip(" |\t")
        offset = line.body_start + text[line.body_start : line.end].index(body) if body else line.body_start
        cursor = 0
        for part in _SENTENCE_END.split(body):
            at = body.index(part, cursor)
            cursor = at + len(part)
            if part.strip():
                found.append(Sentence(part.strip(), offset + at, offset + at + len(part.rstrip()), index))
    kept = [sentence for sentence in found if len(sentence.text) >= _MIN_CHARS]
    if kept:
        return kept
    stripped = text.strip()
    start = text.index(stripped) if stripped else 0
    return [Sentence(stripped, start, start + len(stripped), 0)]


def split_sentences(text: str) -> list[str]:
    return [sentence.text for sentence in sentences(text)]
