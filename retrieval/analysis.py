"""One text analysis for BM25, used at index time and at query time alike."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def analyze(text: str) -> list[str]:
    """Lower-cased word tokens without English stop words, Snowball-stemmed."""
    words = [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]
    return _stemmer().stemWords(words)


def analyze_many(texts: list[str]) -> list[list[str]]:
    return [analyze(text) for text in texts]
