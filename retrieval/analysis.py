"""One text analysis for BM25, used at index time and at query time alike."""

from __future__ import annotations

import re
import sys
from functools import lru_cache

import Stemmer


def _import_bm25s_without_numba() -> None:
    """bm25s imports numba and scipy whenever they are installed (unstructured brings numba along), for a JIT
    backend and a sparse-matrix build Penny never selects (its defaults, numpy, are what Penny uses): ~0.4 s of
    CPU at the start of every command. Both are hidden only while bm25s loads, so code that wants them later
    (the segment BM25 statistics use scipy) still imports them."""
    hidden = [name for name in ("numba", "scipy") if name not in sys.modules]
    if "bm25s" in sys.modules or not hidden:
        return
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import bm25s  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


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
