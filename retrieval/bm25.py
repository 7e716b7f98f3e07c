"""Keyword search behind one small interface: bm25s by default, rank-bm25 selectable.

Both score every row for a query; callers pick the top rows themselves, so filters apply to the full ranking
and never shrink the result after the fact.

An index version is several segments (retrieval/snapshot.py), and a score must not depend on how the rows are
split: a segment keeps only what does not depend on the rest of the corpus (each row's term frequencies and
length, `TermCounts`), and `SegmentedBm25` scores with document frequencies, row count and average length taken
over the live rows of every segment, as bm25s scores one index built on those rows (tests/test_segments.py).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Protocol

import numpy as np

from retrieval.analysis import analyze, analyze_many

FORMAT_VERSION = 1
SEGMENT_FORMAT = 2  # a segment's BM25 folder: term counts or tokens, scored with corpus-wide statistics
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


# ---------------------------------------------------------------- segments


@dataclass(frozen=True)
class TermCounts:
    """One segment's term statistics: for each term, the rows it occurs in and how often (postings in CSC order,
    term by term), and every row's length in tokens. Nothing here depends on the other segments."""

    terms: dict[str, int]
    starts: np.ndarray  # int64, len(terms) + 1: term t's postings are [starts[t], starts[t + 1])
    rows: np.ndarray  # int32, the segment-local row of each posting
    frequencies: np.ndarray  # int32, the term's count in that row
    lengths: np.ndarray  # int32, tokens per row

    @classmethod
    def build(cls, tokens: list[list[str]]) -> TermCounts:
        import scipy.sparse

        terms: dict[str, int] = {}
        ids = [terms.setdefault(token, len(terms)) for token in chain.from_iterable(tokens)]
        lengths = np.array([len(row) for row in tokens], dtype=np.int32)
        rows = np.repeat(np.arange(len(tokens), dtype=np.int32), lengths)
        # the CSC conversion sums repeated (row, term) pairs: the sums are the term frequencies
        matrix = scipy.sparse.csc_matrix(
            (np.ones(len(ids), dtype=np.int32), (rows, np.array(ids, dtype=np.int64))), shape=(len(tokens), len(terms))
        )
        return cls(
            terms,
            matrix.indptr.astype(np.int64),
            matrix.indices.astype(np.int32),
            matrix.data.astype(np.int32),
            lengths,
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(local rows, frequencies) of one term; empty when the segment never saw it."""
        term_id = self.terms.get(term)
        if term_id is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        start, end = self.starts[term_id], self.starts[term_id + 1]
        return self.rows[start:end], self.frequencies[start:end]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "terms.json").write_text(json.dumps(sorted(self.terms, key=self.terms.__getitem__)))
        for name in ("starts", "rows", "frequencies", "lengths"):
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> TermCounts:
        terms = {term: i for i, term in enumerate(json.loads((folder / "terms.json").read_text()))}
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("starts", "rows", "frequencies")}
        return cls(terms, lengths=np.load(folder / "lengths.npy"), **arrays)


class SegmentedBm25:
    """bm25s's scoring (Lucene's IDF, its term-frequency saturation, float32 sums in query-term order) over the
    live rows of several segments, with corpus-wide statistics. Rows are numbered across the segments in order;
    deleted rows score 0 and count in no statistic."""

    backend = "bm25s"

    def __init__(self, parts: list[TermCounts], live: np.ndarray) -> None:
        self._parts = parts
        self._offsets = np.cumsum([0] + [len(part.lengths) for part in parts])
        self._live = live
        self._lengths = np.concatenate([part.lengths for part in parts]) if parts else np.zeros(0, np.int32)
        self._count = int(live.sum())
        self._average_length = float(self._lengths[live].mean()) if self._count else 0.0

    def scores(self, query: str) -> np.ndarray:
        k1, b = BM25_PARAMETERS["bm25_k1"], BM25_PARAMETERS["bm25_b"]
        scores = np.zeros(len(self._live), dtype=np.float32)
        if not self._count:
            return scores
        for term in analyze(query):  # a repeated query term counts again, as in bm25s
            rows, frequencies = self._live_postings(term)
            if not len(rows):
                continue
            documents = len(rows)
            idf = np.float32(math.log(1 + (self._count - documents + 0.5) / (documents + 0.5)))
            frequencies = frequencies.astype(np.float64)
            saturation = frequencies / (k1 * ((1 - b) + b * self._lengths[rows] / self._average_length) + frequencies)
            np.add.at(scores, rows, (np.float64(idf) * saturation).astype(np.float32))
        return scores

    def _live_postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        found_rows, found_frequencies = [], []
        for part, offset in zip(self._parts, self._offsets, strict=False):
            rows, frequencies = part.postings(term)
            if len(rows):
                found_rows.append(rows.astype(np.int64) + offset)
                found_frequencies.append(frequencies)
        if not found_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        rows, frequencies = np.concatenate(found_rows), np.concatenate(found_frequencies)
        keep = self._live[rows]
        return rows[keep], frequencies[keep]


class SegmentedRankBm25:
    """rank-bm25 over the live rows of several segments: one BM25Okapi built on their tokens when loaded (its IDF
    floor depends on every term's frequency, so there is nothing cheaper to keep per segment)."""

    backend = "rank-bm25"

    def __init__(self, parts: list[list[list[str]]], live: np.ndarray) -> None:
        tokens = list(chain.from_iterable(parts))
        self._live_rows = np.flatnonzero(live)
        self._size = len(live)
        self._index = RankBm25Index([tokens[row] for row in self._live_rows])

    def scores(self, query: str) -> np.ndarray:
        scores = np.zeros(self._size, dtype=np.float32)
        scores[self._live_rows] = self._index.scores(query)
        return scores


def save_segment_bm25(texts: list[str], backend: str, folder: Path) -> None:
    """What a segment keeps for BM25: term counts (bm25s) or the analysed tokens (rank-bm25)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown BM25 backend {backend!r}; choose one of {sorted(BACKENDS)}")
    tokens = analyze_many(texts)
    folder.mkdir(parents=True, exist_ok=True)
    if backend == "bm25s":
        TermCounts.build(tokens).save(folder)
    else:
        (folder / "tokens.json").write_text(json.dumps(tokens))
    (folder / "penny-bm25.json").write_text(json.dumps({"backend": backend, "format": SEGMENT_FORMAT}))


def load_segment_bm25(folder: Path) -> TermCounts | list[list[str]]:
    meta = json.loads((folder / "penny-bm25.json").read_text())
    if meta.get("format") != SEGMENT_FORMAT:
        raise ValueError(f"BM25 segment in {folder} has format {meta.get('format')}, expected {SEGMENT_FORMAT}")
    if meta["backend"] == "bm25s":
        return TermCounts.load(folder)
    return json.loads((folder / "tokens.json").read_text())


def segmented_bm25(backend: str, parts: list, live: np.ndarray) -> SegmentedBm25 | SegmentedRankBm25:
    return SegmentedBm25(parts, live) if backend == "bm25s" else SegmentedRankBm25(parts, live)
