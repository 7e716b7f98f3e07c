"""Structure-aware chunking: chunks never cross a section, fit the embedding model's token window (measured with
its own tokenizer), keep tables whole where they fit, and overlap a little where a section is split."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ingest.parse import Block, ParsedDocument, ParseFailure

SECTION_SEPARATOR = " > "
_BLOCK_JOINER = "\n\n"
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    token_count: int
    ordinal: int


@dataclass(frozen=True)
class _Unit:
    """A span of the document text that is never split further."""

    start: int
    end: int
    tokens: int
    block: int


def document_text(parsed: ParsedDocument) -> str:
    return _BLOCK_JOINER.join(block.text for block in parsed.blocks)


def chunk_document(
    parsed: ParsedDocument,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
    max_chunks: int | None = None,
) -> list[ChunkDraft]:
    """The document's chunks; ParseFailure as soon as there would be more than `max_chunks` of them."""
    text = document_text(parsed)
    starts = _block_starts(parsed.blocks)
    drafts: list[ChunkDraft] = []
    for section, block_ids in _sections(parsed.blocks):
        label = SECTION_SEPARATOR.join(section)
        # the section label is indexed with every chunk, so it takes part of each chunk's budget
        budget = max(32, max_tokens - (count_tokens([label])[0] + 2 if label else 0))
        units = _units(parsed.blocks, block_ids, starts, text, count_tokens, budget)
        for group in _pack(units, budget, overlap_tokens):
            if max_chunks is not None and len(drafts) == max_chunks:
                raise ParseFailure(
                    "too_many_chunks",
                    f"it makes more than {max_chunks:,} chunks, over the limit (PENNY_MAX_CHUNKS_PER_DOCUMENT)",
                )
            start, end = group[0].start, group[-1].end
            drafts.append(
                ChunkDraft(
                    text=text[start:end],
                    section=label,
                    page=parsed.blocks[group[0].block].page,
                    char_start=start,
                    char_end=end,
                    token_count=sum(unit.tokens for unit in group),
                    ordinal=len(drafts),
                )
            )
    return drafts


def _block_starts(blocks: list[Block]) -> list[int]:
    starts, offset = [], 0
    for block in blocks:
        starts.append(offset)
        offset += len(block.text) + len(_BLOCK_JOINER)
    return starts


def _sections(blocks: list[Block]) -> list[tuple[tuple[str, ...], list[int]]]:
    """Runs of consecutive blocks under the same heading path (and page, so a chunk has one page)."""
    runs: list[tuple[tuple[str, ...], list[int]]] = []
    for i, block in enumerate(blocks):
        if runs and runs[-1][0] == block.section and blocks[runs[-1][1][-1]].page == block.page:
            runs[-1][1].append(i)
        else:
            runs.append((block.section, [i]))
    return runs


def _units(blocks, block_ids, starts, text, count_tokens: TokenCounter, budget: int) -> list[_Unit]:
    counts = count_tokens([blocks[i].text for i in block_ids])
    units: list[_Unit] = []
    for i, tokens in zip(block_ids, counts, strict=True):
        start, end = starts[i], starts[i] + len(blocks[i].text)
        if tokens <= budget:
            units.append(_Unit(start, end, tokens, i))
        else:
            units.extend(_split(text, start, end, i, count_tokens, budget, by_line=blocks[i].is_table))
    return units


def _split(text, start, end, block, count_tokens: TokenCounter, budget: int, by_line: bool) -> list[_Unit]:
    """An oversized block as sentences (table rows for tables), and over-long sentences as word windows."""
    pattern = re.compile(r"\n+") if by_line else _SENTENCE_END
    spans, cursor = [], start
    for match in pattern.finditer(text, start, end):
        if match.start() > cursor:
            spans.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end:
        spans.append((cursor, end))
    counts = count_tokens([text[a:b] for a, b in spans])
    units: list[_Unit] = []
    for (a, b), tokens in zip(spans, counts, strict=True):
        if tokens <= budget:
            units.append(_Unit(a, b, tokens, block))
        else:
            units.extend(_word_windows(text, a, b, block, tokens, budget))
    return units


def _word_windows(text, start, end, block, tokens, budget) -> list[_Unit]:
    words = [match.span() for match in re.finditer(r"\S+", text[start:end])]
    per_window = max(1, int(len(words) * budget / tokens * 0.9))
    units = []
    for i in range(0, len(words), per_window):
        window = words[i : i + per_window]
        share = round(tokens * len(window) / len(words))
        units.append(_Unit(start + window[0][0], start + window[-1][1], min(share, budget), block))
    return units


def _pack(units: list[_Unit], budget: int, overlap_tokens: int) -> list[list[_Unit]]:
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > budget:
            groups.append(current)
            continues_block = unit.block == current[-1].block
            current = _overlap(current, overlap_tokens, budget - unit.tokens) if continues_block else []
            used = sum(u.tokens for u in current)
        current.append(unit)
        used += unit.tokens
    if current:
        groups.append(current)
    return groups


def _overlap(previous: list[_Unit], overlap_tokens: int, room: int) -> list[_Unit]:
    """Trailing units of the previous chunk, from the block being split, that fit the overlap."""
    carried: list[_Unit] = []
    total = 0
    for unit in reversed(previous):
        if total + unit.tokens > min(overlap_tokens, room) or unit.block != previous[-1].block:
            break
        carried.insert(0, unit)
        total += unit.tokens
    if len(carried) == len(previous):  # never repeat a whole chunk
        carried = carried[1:]
    return carried
