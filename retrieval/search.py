"""Hybrid search: dense and BM25 candidates, both scored exactly over their union, fused, filtered, with a
confidence that the top passage answers the query."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import faiss
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from penny import BadInput, IndexUnavailable, Passage, SearchResult, Settings
from retrieval.calibration_store import fusion_for_version
from retrieval.candidates import Candidates
from retrieval.catalogue import ChunkRow, Document, live_version, open_catalogue
from retrieval.confidence import ConfidenceModel, features_from_candidates
from retrieval.dense import search_dense
from retrieval.embedder import Embedder, get_embedder
from retrieval.fusion import FusionMethod, fuse_scores
from retrieval.snapshot import Segment, Snapshot, version_folder

# A filter allowing at most this many rows of a segment is searched exactly even where the segment's index is HNSW
# (a dot product over them).
EXACT_FILTER_ROWS = 20_000
ALLOWED_CACHE_SIZE = 256


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions applied inside retrieval. `groups=None` means a trusted local caller (the admin CLI)."""

    groups: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()
    path_prefix: str = ""
    doc_types: tuple[str, ...] = ()
    document_ids: tuple[int, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.groups is None and not (self.sources or self.path_prefix or self.doc_types or self.document_ids)

    def allows(self, doc) -> bool:
        return (
            (self.groups is None or bool(set(self.groups) & set(doc.groups)))
            and (not self.sources or doc.source in self.sources)
            and (not self.path_prefix or doc.path.startswith(self.path_prefix))
            and (not self.doc_types or doc.doc_type in self.doc_types)
            and (not self.document_ids or doc.id in self.document_ids)
        )


class Searcher:
    """Searches the live index version; picks up a new version when an ingestion job commits one, reading only the
    segments it does not share with the version before."""

    exact_filter_rows: int = EXACT_FILTER_ROWS

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or get_embedder(settings)
        self.sessions: sessionmaker[Session] = open_catalogue(settings)
        self.confidence_model = ConfidenceModel.packaged()
        self._snapshot: Snapshot | None = None
        self._fusion: tuple[int, FusionMethod] | None = None  # the fusion of the version last searched
        self._lock = threading.Lock()
        # allowed rows per (index version, filter): a caller's groups repeat on every query it makes
        self._allowed: OrderedDict[tuple[int, SearchFilter], np.ndarray] = OrderedDict()
        faiss.omp_set_num_threads(settings.search_threads)

    def snapshot(self) -> Snapshot:
        with self.sessions() as session:
            version = live_version(session)
        if version is None:
            raise IndexUnavailable("nothing has been ingested yet: run `penny ingest PATH` first")
        with self._lock:
            if self._snapshot is None or self._snapshot.version != version:
                folder = version_folder(self.settings, version)
                self._snapshot = Snapshot(folder, self.settings, previous=self._snapshot)
            return self._snapshot

    def fusion_for(self, snapshot: Snapshot) -> FusionMethod:
        """The configured fusion, with this version's own calibration when it has one (retrieval/calibration.py)."""
        with self._lock:
            if self._fusion is None or self._fusion[0] != snapshot.version:
                self._fusion = (snapshot.version, fusion_for_version(self.settings, snapshot.folder))
            return self._fusion[1]

    def search(
        self,
        query: str,
        k: int = 10,
        search_filter: SearchFilter | None = None,
        query_vector: np.ndarray | None = None,
        snapshot: Snapshot | None = None,
    ) -> SearchResult:
        """One query; pass `query_vector` when the caller already embedded it (the answer cache did) to skip that,
        and `snapshot` when it already looked up the live version."""
        vectors = None if query_vector is None else query_vector[np.newaxis, :]
        return self.search_many([query], k, [search_filter], vectors, snapshot)[0]

    def search_many(
        self,
        queries: list[str],
        k: int = 10,
        search_filters: list[SearchFilter | None] | None = None,
        query_vectors: np.ndarray | None = None,
        snapshot: Snapshot | None = None,
    ) -> list[SearchResult]:
        """Search several queries with one embedding batch (none when `query_vectors` are given); `search_filters`
        is one filter per query (or None); `snapshot` is the live version's (looked up when not given)."""
        started = time.process_time()
        queries, filters = self._validate(queries, k, search_filters)
        snapshot = snapshot or self.snapshot()
        embed_calls = 1 if query_vectors is None else 0
        vectors = self.embedder.embed(queries) if query_vectors is None else query_vectors
        shared_ms = (time.process_time() - started) * 1000 / len(queries)
        results = []
        for query, vector, search_filter in zip(queries, vectors, filters, strict=True):
            query_started = time.process_time()
            candidates = self.candidates(snapshot, query, vector, k, search_filter)
            cpu_ms = shared_ms + (time.process_time() - query_started) * 1000
            results.append(self._result(snapshot, query, vector, candidates, k, cpu_ms, embed_calls))
        return results

    @staticmethod
    def _validate(
        queries: list[str], k: int, search_filters: list[SearchFilter | None] | None
    ) -> tuple[list[str], list[SearchFilter]]:
        queries = [query.strip() for query in queries]
        if not queries or not all(queries):
            raise BadInput("the query is empty: ask a question or give some search words")
        if k < 1:
            raise BadInput("k must be at least 1")
        filters = search_filters if search_filters is not None else [None] * len(queries)
        if len(filters) != len(queries):
            raise BadInput(f"give one search filter per query: {len(queries)} queries, {len(filters)} filters")
        return queries, [search_filter or SearchFilter() for search_filter in filters]

    def _result(
        self,
        snapshot: Snapshot,
        query: str,
        vector: np.ndarray,
        candidates: Candidates,
        k: int,
        cpu_ms: float,
        embed_calls: int,
    ) -> SearchResult:
        fused = fuse_scores(candidates, self.fusion_for(snapshot), query)
        order = fold_duplicates(snapshot, candidates.rows, fused)[:k]
        chunks = self._load_chunks(snapshot, [int(snapshot.chunk_ids[candidates.rows[i]]) for i in order])
        passages = [
            Passage(
                chunk=chunks[int(snapshot.chunk_ids[candidates.rows[i]])],
                score=float(fused[i]),
                dense_score=float(candidates.dense[i]),
                bm25_score=float(candidates.bm25[i]),
                rank=rank + 1,
            )
            for rank, i in enumerate(order)
        ]
        top_text = (
            f"{passages[0].chunk.section or passages[0].chunk.title}\n{passages[0].chunk.text}" if passages else ""
        )
        confidence = self.confidence_model.predict(features_from_candidates(query, candidates, fused, order, top_text))
        return SearchResult(
            passages=passages,
            confidence=confidence,
            index_version=snapshot.version,
            embed_calls=embed_calls,
            cpu_ms=cpu_ms,
            query_vector=vector,
        )

    def candidates(
        self, snapshot: Snapshot, query: str, query_vector: np.ndarray, k: int, search_filter: SearchFilter
    ) -> Candidates:
        """The union of the dense and BM25 top candidates among allowed rows, each with both exact scores.

        Filters restrict both rankers before their top is taken, so a filter never shrinks the result below k
        while k allowed passages exist (dense finds `depth` allowed rows; BM25 adds rows sharing a query term)."""
        empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
        if not len(snapshot):
            return empty
        allowed_rows = None if search_filter.is_open else self._allowed_rows(snapshot, search_filter)
        if allowed_rows is not None and len(allowed_rows) == 0:
            return empty
        depth = max(self.settings.candidates, 2 * k)
        dense_rows = self._dense_rows(snapshot, query_vector, depth, allowed_rows)

        bm25_all = snapshot.bm25.scores(query)
        # only allowed rows sharing a term with the query compete (a BM25 score of 0 is no match at all); taking the
        # top among those is also cheaper than partitioning every row of a large index
        pool = np.flatnonzero(bm25_all > 0) if allowed_rows is None else allowed_rows[bm25_all[allowed_rows] > 0]
        bm25_rows = pool[top_rows(bm25_all[pool], depth)]

        rows = np.unique(np.concatenate([dense_rows, bm25_rows]))
        # both scores are exact for every candidate: the dot product is cheap, and BM25 scored all rows already
        dense = np.asarray(snapshot.vectors[rows] @ query_vector, dtype=np.float32)
        bm25 = np.maximum(bm25_all[rows], 0).astype(np.float32)  # rank-bm25 can score very common terms below 0
        position = {int(row): i for i, row in enumerate(rows)}
        return Candidates(
            rows=rows,
            dense=dense,
            bm25=bm25,
            dense_rank={position[int(row)]: rank for rank, row in enumerate(dense_rows)},
            bm25_rank={position[int(row)]: rank for rank, row in enumerate(bm25_rows)},
        )

    def _allowed_rows(self, snapshot: Snapshot, search_filter: SearchFilter) -> np.ndarray:
        key = (snapshot.version, search_filter)
        with self._lock:
            if key in self._allowed:
                self._allowed.move_to_end(key)
                return self._allowed[key]
        rows = allowed_rows_for(snapshot, search_filter)
        with self._lock:
            self._allowed[key] = rows
            while len(self._allowed) > ALLOWED_CACHE_SIZE:
                self._allowed.popitem(last=False)
        return rows

    def _dense_rows(
        self, snapshot: Snapshot, query_vector: np.ndarray, depth: int, allowed_rows: np.ndarray | None
    ) -> np.ndarray:
        """Rows of the dense top `depth` among allowed live rows: each segment's top `depth`, merged by score."""
        segments = len(snapshot.segments)
        local_allowed = [None] * segments if allowed_rows is None else snapshot.split_rows(allowed_rows)
        found_rows, found_scores = [], []
        for i, (segment, allowed) in enumerate(zip(snapshot.segments, local_allowed, strict=True)):
            if allowed is not None and not len(allowed):
                continue
            local, similarities = self._segment_top(segment, snapshot.deleted_in(i), query_vector, depth, allowed)
            found_rows.append(local + snapshot.offsets[i])
            found_scores.append(similarities)
        if not found_rows:
            return np.zeros(0, dtype=np.int64)
        rows, similarities = np.concatenate(found_rows), np.concatenate(found_scores)
        return rows[top_rows(similarities, depth)]

    def _segment_top(
        self, segment: Segment, deleted: np.ndarray, query_vector: np.ndarray, depth: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(local rows, similarities) of one segment's top `depth` among `allowed` (its live rows when None). A narrow
        filter on an approximate index is searched exactly: a graph walk that may only collect few allowed nodes
        would return fewer than `depth` rows."""
        if allowed is not None and segment.approximate and len(allowed) <= self.exact_filter_rows:
            return _exact_top(segment, query_vector, depth, allowed)
        ids, similarities = search_dense(
            segment.dense, query_vector, depth, allowed, self.settings.hnsw_ef_search, excluded_ids=deleted
        )
        available = len(segment) - len(deleted) if allowed is None else len(allowed)
        if segment.approximate and len(ids) < min(depth, available):
            live = np.setdiff1d(np.arange(len(segment)), deleted) if allowed is None else allowed
            return _exact_top(segment, query_vector, depth, live)
        return ids.astype(np.int64), similarities

    def _load_chunks(self, snapshot: Snapshot, chunk_ids: list[int]) -> dict:
        if not chunk_ids:
            return {}
        with self.sessions() as session:
            rows = session.execute(
                select(ChunkRow, Document.path).join(Document).where(ChunkRow.id.in_(chunk_ids))
            ).all()
        found = {row.id: row.to_chunk(path) for row, path in rows}
        missing = set(chunk_ids) - set(found)
        if missing:  # the catalogue moved on between reading the version and reading the rows
            raise IndexUnavailable(f"index version {snapshot.version} is no longer live; retry the search")
        return found


def allowed_rows_for(snapshot: Snapshot, search_filter: SearchFilter) -> np.ndarray:
    """Live index rows whose document the filter allows."""
    allowed_docs = np.array(
        [doc_id for doc_id, doc in snapshot.documents.items() if search_filter.allows(doc)], dtype=np.int64
    )
    return np.flatnonzero(np.isin(snapshot.document_ids, allowed_docs) & snapshot.live)


def top_rows(scores: np.ndarray, depth: int) -> np.ndarray:
    """Positions of the `depth` highest scores, best first."""
    depth = min(depth, len(scores))
    if depth <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[np.argsort(-scores[top], kind="stable")]


def _exact_top(
    segment: Segment, query_vector: np.ndarray, depth: int, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    similarities = np.asarray(segment.vectors[rows] @ query_vector, dtype=np.float32)
    top = top_rows(similarities, depth)
    return rows[top].astype(np.int64), similarities[top]


def fold_duplicates(snapshot: Snapshot, rows: np.ndarray, fused: np.ndarray) -> list[int]:
    """Candidate positions by fused score, keeping one of several identical passages (same text, two paths)."""
    seen: set[int] = set()
    order = []
    for i in np.argsort(-fused, kind="stable"):
        key = int(snapshot.text_keys[rows[i]])
        if key not in seen:
            seen.add(key)
            order.append(int(i))
    return order


_shared: dict[str, Searcher] = {}
_sharing = threading.Lock()


def get_searcher(settings: Settings) -> Searcher:
    """The process's Searcher for these settings, by value (equal settings share one; the object may come and go)."""
    key = settings.model_dump_json()
    with _sharing:
        if key not in _shared:
            _shared[key] = Searcher(settings)
        return _shared[key]
