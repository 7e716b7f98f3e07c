"""Keeping a generated answer tied to its passages: the numbered prompt, citations taken only from the passages
supplied, and the check that every number in the answer occurs in some passage (small models invent figures)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from penny import Passage

NOT_FOUND = "NOT FOUND"
# "exact figures, dates and conditions": without it the 1.5B model answered "yes" and left out the limit
SYSTEM_PROMPT = (
    "You answer questions about company documents using only the numbered passages given. "
    "Give the direct answer with the exact figures, dates and conditions the passages state, in one to three short "
    "sentences, and cite the passages you used like [1] or [2]. "
    f"If the passages do not state the answer, reply exactly: {NOT_FOUND}"
)
_CITATION = re.compile(r"\[(\d{1,2})\]")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
_DECLINES = re.compile(
    r"^\W*not found"
    r"|(?:passages?|documents?|context|text) (?:do|does) not (?:contain|mention|provide|say|specify|answer)"
    r"|no information (?:about|on|regarding)|(?:cannot|can't|unable to) (?:find|answer|determine)",
    re.IGNORECASE,
)
PASSAGE_CHARS = 1500  # a chunk holds at most ~256 word pieces; this bound only guards odd inputs


def build_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    numbered = "\n\n".join(
        f"[{number}] {passage.chunk.title}"
        + (f" — {passage.chunk.section}" if passage.chunk.section else "")
        + f"\n{passage.chunk.text[:PASSAGE_CHARS]}"
        for number, passage in enumerate(passages, start=1)
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {question}"},
    ]


def cited_numbers(text: str, supplied: int) -> list[int]:
    """Passage numbers the text cites, in order of first mention, keeping only numbers of supplied passages."""
    found: list[int] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= supplied and number not in found:
            found.append(number)
    return found


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text)


def numbers_in(text: str) -> set[str]:
    return {match.group(0).replace(",", "").rstrip(".") for match in _NUMBER.finditer(text)}


def unsupported_numbers(answer: str, sources: Sequence[str]) -> list[str]:
    """Numbers in `answer` (citation markers aside) that occur in none of `sources` (the passages and question)."""
    known: set[str] = set()
    for source in sources:
        known |= numbers_in(source)
    return sorted(numbers_in(strip_citations(answer)) - known)


def is_decline(text: str) -> bool:
    stripped = text.strip()
    return not stripped or bool(_DECLINES.search(stripped[:200]))
