"""One text analysis for BM25, used at index time and at query time alike."""

from __future__ import annotations

import re
import sys
from functools import lru_cache

import Stemmer


def _import_bm25s_without_numba() -> None:
    """bm25s imports numba whenever it is installed (unstructured brings it along) to offer a JIT backend Penny
    never selects (its default, numpy, is what Penny uses): ~0.3 s of CPU at the start of every command. numba is
    hidden only while bm25s loads, so code that wants numba later still imports it."""
    if "bm25s" in sys.modules or "numba" in sys.modules:
        return
    sys.modules["numba"] = None  # type: ignore[assignment]  # makes `import numba` raise ImportError
    try:
        import bm25s  # noqa: F401
    finally:
        del sys.modules["numba"]


_import_bm25s_without_numba()
from bm25s.stopwords import STOPWORDS_EN  # noqa: E402

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
