"""Rewriting a follow-up question into one that stands alone, so retrieval and the cache see the whole question.

Cheap heuristics first: a question with no history, or one that names its subject, is kept; an elliptical one
("what about part-time staff?") is folded into the previous question; one that leans on a pronoun gets the
previous question attached as context. The router asks the LLM for a rewrite only when the LLM answers anyway
and the heuristic rewrite did not retrieve confidently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.analysis import analyze

_ELLIPSIS = re.compile(
    r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<rest>.+?)[\s?.!]*$|^\s*and\s+(?P<and>.+?)[\s?.!]*$", re.I
)
_LEANS_ON_CONTEXT = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|this|that|these|those|there|he|she|him|his|her|the same|one|ones)\b",
    re.I,
)
_SHORT = 2  # a question with at most this many content terms cannot carry its own subject
_WORD = re.compile(r"[\w'-]+")
REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation. "
    "Keep its meaning, name its subject explicitly, and reply with the rewritten question only."
)


@dataclass(frozen=True)
class Rewrite:
    question: str
    method: str  # none | kept | ellipsis | context | llm


def previous_question(history: Sequence[tuple[str, str]]) -> str:
    for role, text in reversed(history):
        if role == "user" and text.strip():
            return text.strip()
    return ""


def needs_context(question: str) -> bool:
    return bool(_ELLIPSIS.match(question) or _LEANS_ON_CONTEXT.search(question)) or len(analyze(question)) <= _SHORT


def rewrite_heuristic(question: str, history: Sequence[tuple[str, str]]) -> Rewrite:
    previous = previous_question(history)
    if not previous:
        return Rewrite(question, "none")
    if not needs_context(question):
        return Rewrite(question, "kept")
    ellipsis = _ELLIPSIS.match(question)
    if ellipsis:
        subject = (ellipsis.group("rest") or ellipsis.group("and")).strip()
        return Rewrite(substitute_subject(previous, subject), "ellipsis")
    return Rewrite(f"{question.rstrip()} (context: {previous})", "context")


def substitute_subject(previous: str, subject: str) -> str:
    """Put `subject` where the previous question had the phrase ending in the same head word
    ("... do full-time employees get?" + "part-time employees" -> "... do part-time employees get?");
    with no shared head word, ask the previous question about the new subject."""
    words = _WORD.findall(subject)
    if words:
        head = words[-1].lower()
        previous_words = previous.split()
        for index, word in enumerate(previous_words):
            if word.strip("?.!,;:").lower() == head:
                start = max(0, index - len(words) + 1)
                trailing = word[len(word.rstrip("?.!,;:")) :]
                return " ".join([*previous_words[:start], subject + trailing, *previous_words[index + 1 :]])
    return f"{previous.rstrip('?.! ')}, for {subject}?"


def rewrite_messages(question: str, history: Sequence[tuple[str, str]], turns: int = 4) -> list[dict[str, str]]:
    conversation = "\n".join(f"{role}: {text}" for role, text in list(history)[-turns:])
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {
            "role": "user",
            "content": f"Conversation:\n{conversation}\n\nLast question: {question}\n\nRewritten question:",
        },
    ]
