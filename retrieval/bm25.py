"""Keyword search behind one small interface: bm25s by default, rank-bm25 selectable.

Both score every row for a query; callers pick the top rows themselves, so filters apply to the full ranking
and never shrink the result after the fact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from retrieval.analysis import analyze, analyze_many

FORMAT_VERSION = 1
# Recorded in every index version's manifest (retrieval/build.py): other values need a rebuild.
BM25_PARAMETERS = {"bm25_k1": 1.5, "bm25_b": 0.75}
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG on its own handler


class Bm25Index(Protocol):
    backend: str

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per indexed row (0 where no query term occurs)."""
        ...

    def save(self, folder: Path) -> None: ...


class Bm25sIndex:
    backend = "bm25s"

    def __init__(self, model) -> None:
        self._model = model

    @classmethod
    def build(cls, texts: list[str]) -> Bm25sIndex:
        import bm25s

        model = bm25s.BM25(k1=BM25_PARAMETERS["bm25_k1"], b=BM25_PARAMETERS["bm25_b"])
        model.index(analyze_many(texts), show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, folder: Path) -> Bm25sIndex:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True, load_corpus=False))

    def save(self, folder: Path) -> None:
        self._model.save(str(folder))

    def scores(self, query: str) -> np.ndarray:
        ids = self._model.get_tokens_ids(analyze(query))
        if not ids:
            return np.zeros(self._model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)


class RankBm25Index:
    """rank-bm25's Okapi BM25: pure Python and linear in the corpus, kept for comparison and as the card names it."""

    backend = "rank-bm25"

    def __init__(self, tokens: list[list[str]]) -> None:
        from rank_bm25 import BM25Okapi

        self._tokens = tokens
        # rank-bm25 divides by the corpus size: an empty corpus gets one empty row that no query matches
        self._model = BM25Okapi(tokens or [[]], k1=BM25_PARAMETERS["bm25_k1"], b=BM25_PARAMETERS["bm25_b"])

    @classmethod
    def build(cls, texts: list[str]) -> RankBm25Index:
        return cls(analyze_many(texts))

    @classmethod
    def load(cls, folder: Path) -> RankBm25Index:
        return cls(json.loads((folder / "tokens.json").read_text()))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tokens.json").write_text(json.dumps(self._tokens))

    def scores(self, query: str) -> np.ndarray:
        terms = analyze(query)
        if not terms or not self._tokens:
            return np.zeros(len(self._tokens), dtype=np.float32)
        return np.asarray(self._model.get_scores(terms), dtype=np.float32)


BACKENDS: dict[str, type[Bm25sIndex] | type[RankBm25Index]] = {"bm25s": Bm25sIndex, "rank-bm25": RankBm25Index}


def build_bm25(texts: list[str], backend: str) -> Bm25Index:
    if backend not in BACKENDS:
        raise ValueError(f"unknown BM25 backend {backend!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[backend].build(texts)


def save_bm25(index: Bm25Index, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    (folder / "penny-bm25.json").write_text(json.dumps({"backend": index.backend, "format": FORMAT_VERSION}))


def load_bm25(folder: Path) -> Bm25Index:
    meta = json.loads((folder / "penny-bm25.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"BM25 index in {folder} has format {meta.get('format')}, expected {FORMAT_VERSION}")
    return BACKENDS[meta["backend"]].load(folder)
