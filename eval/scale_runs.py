"""Search latency and HNSW recall at sizes the dev sets do not reach, on a synthetic but structured index.

What the synthetic index is: the real chunk vectors of the ingested dev sets (msmarco-sample, tatqa-dev) serve as
topic centres; each synthetic row is a centre plus Gaussian noise (cosine to its centre about 0.8), renormalised.
Its BM25 text is its centre's analysed tokens, each kept with probability 0.7, plus three tokens drawn from the
whole vocabulary. Queries are the real dev-set query embeddings and texts, so both rankers see realistic
neighbourhoods. The timed path is the library's own: Searcher.candidates, fusion, duplicate folding and the
confidence features, plus the query embedding; reading the top chunks from SQL is timed on the real index only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from eval.metrics import latency_figures, percentile
from eval.retrieval_devsets import CACHE, DevSet, dev_sets, settings_for
from eval.retrieval_runs import row_info
from penny import Settings
from retrieval.analysis import analyze
from retrieval.bm25 import SegmentedBm25, TermCounts
from retrieval.confidence import features_from_candidates
from retrieval.dense import build_dense, is_approximate, load_dense, save_dense, search_dense
from retrieval.fusion import fuse
from retrieval.search import Searcher, SearchFilter, fold_duplicates
from retrieval.snapshot import DocumentMeta

console = Console(width=160)
RNG_SEED = 7


@dataclass
class SyntheticSegment:
    """Duck-types the parts of retrieval.snapshot.Segment that search reads."""

    vectors: np.ndarray
    dense: faiss.Index  # FAISS ids are rows

    @property
    def approximate(self) -> bool:
        return is_approximate(self.dense)

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class SyntheticSnapshot:
    """Duck-types the parts of retrieval.snapshot.Snapshot that search reads: one segment, nothing deleted."""

    vectors: np.ndarray
    dense: faiss.Index
    bm25: SegmentedBm25
    chunk_ids: np.ndarray
    document_ids: np.ndarray
    text_keys: np.ndarray
    documents: dict[int, DocumentMeta]
    version: int = 0
    live: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @property
    def segments(self) -> list[SyntheticSegment]:
        return [SyntheticSegment(self.vectors, self.dense)]

    @property
    def offsets(self) -> np.ndarray:
        return np.array([0, len(self.chunk_ids)], dtype=np.int64)

    def deleted_in(self, segment: int) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)

    def split_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        return [rows]


def real_material() -> tuple[np.ndarray, list[list[str]], list[str], np.ndarray]:
    """Chunk vectors and analysed chunk texts of the ingested dev sets, and real query texts with vectors."""
    vectors, tokens, queries = [], [], []
    for devset in dev_sets(max_queries=300, ocp_questions=0)[:2]:
        searcher = Searcher(devset.settings)
        snapshot = searcher.snapshot()
        vectors.append(np.asarray(snapshot.vectors))
        tokens.extend(analyze(text) for text in row_info(devset, searcher).texts)
        queries.extend(q.text for q in devset.queries)
    embedder = Searcher(settings_for("msmarco-sample")).embedder
    return np.concatenate(vectors), tokens, queries, embedder.embed(queries)


def synthetic_snapshot(size: int, settings: Settings, material) -> tuple[SyntheticSnapshot, float]:
    centres, centre_tokens, _, _ = material
    rng = np.random.default_rng(RNG_SEED)
    which = rng.integers(0, len(centres), size)
    vectors = np.empty((size, centres.shape[1]), dtype=np.float32)
    for start in range(0, size, 100_000):
        part = which[start : start + 100_000]
        noise = rng.standard_normal((len(part), centres.shape[1])).astype(np.float32) * (
            0.75 / np.sqrt(centres.shape[1])
        )
        block = centres[part] + noise
        vectors[start : start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vocabulary = sorted({t for tokens in centre_tokens for t in tokens})
    extras = rng.integers(0, len(vocabulary), (size, 3))
    corpus: list[list[str]] = [[] for _ in range(size)]
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(len(centres) + 1))
    for centre in range(len(centres)):
        rows = order[starts[centre] : starts[centre + 1]]
        tokens = centre_tokens[centre]
        keep = rng.random((len(rows), len(tokens))) < 0.7
        for row, kept in zip(rows.tolist(), keep.tolist(), strict=True):
            corpus[row] = [t for t, k in zip(tokens, kept, strict=True) if k] + [vocabulary[i] for i in extras[row]]
    chunk_ids = np.arange(1, size + 1, dtype=np.int64)
    started = time.perf_counter()
    kind = "hnsw" if size >= settings.ann_min_chunks else "flat"
    # FAISS ids are rows, as in an index segment
    cached = CACHE / f"synthetic-{size}-{kind}-m{settings.hnsw_m}-seed{RNG_SEED}-rows.faiss"
    if cached.exists():  # the vectors are regenerated identically from the seed; the graph is slow to rebuild
        dense = load_dense(cached, settings)
    else:
        dense = build_dense(vectors, np.arange(size, dtype=np.int64), settings)
        if kind == "hnsw":
            save_dense(dense, cached)
    build_seconds = time.perf_counter() - started
    documents = {
        1: DocumentMeta(id=1, path="synthetic://1", source="synthetic", doc_type="record", groups=("everyone",))
    }
    snapshot = SyntheticSnapshot(
        vectors=vectors,
        dense=dense,
        bm25=SegmentedBm25([TermCounts.build(corpus)], np.ones(size, dtype=bool)),
        chunk_ids=chunk_ids,
        document_ids=np.ones(size, dtype=np.int64),
        text_keys=chunk_ids.copy(),
        documents=documents,
        live=np.ones(size, dtype=bool),
    )
    return snapshot, build_seconds


def time_core(searcher: Searcher, snapshot, queries: list[str], with_embedding: bool) -> dict[str, float]:
    """Warm single-query latency of the retrieval core (optionally with the query embedding)."""
    vectors = searcher.embedder.embed(queries)
    open_filter = SearchFilter()
    times = []
    started = time.perf_counter()
    for query, vector in zip(queries, vectors, strict=True):
        t0 = time.perf_counter()
        if with_embedding:
            vector = searcher.embedder.embed_one(query)  # one text: the embedder's single-query thread count
        candidates = searcher.candidates(snapshot, query, vector, 10, open_filter)
        fused = fuse(candidates, searcher.settings, query)
        order = fold_duplicates(snapshot, candidates.rows, fused)[:10]
        features_from_candidates(query, candidates, fused, order, query)
        times.append((time.perf_counter() - t0) * 1000)
    return latency_figures(times, time.perf_counter() - started)


def embedding_threads_side_by_side(searcher: Searcher, queries: list[str]) -> list[tuple[str, dict[str, float]]]:
    """Single-query embedding on the embedder's own thread count against search_threads, alternating per query."""
    embedder = searcher.embedder
    embedder.embed_one(queries[0])
    counts = {searcher.settings.embed_threads: [], searcher.settings.search_threads: []}
    for query in queries:
        for count, times in counts.items():
            embedder.single_threads = count
            t0 = time.perf_counter()
            embedder.embed_one(query)
            times.append((time.perf_counter() - t0) * 1000)
    embedder.single_threads = searcher.settings.search_threads
    return [
        (
            f"query embedding alone, {count} torch thread(s)",
            {
                "p50_ms": percentile(times, 50),
                "p95_ms": percentile(times, 95),
                "qps": 1000 / float(np.mean(times)),
            },
        )
        for count, times in counts.items()
    ]


def dense_recall(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, ef_search: int, k: int = 10) -> float:
    """Share of the exact top-k (by inner product over all vectors) that the index returns."""
    return dense_quality(index, vectors, queries, ef_search, k)[0]


def dense_quality(
    index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, ef_search: int, k: int = 10
) -> tuple[float, float]:
    """(recall@k against exact search, mean shortfall of the returned k-th cosine below the exact k-th cosine)."""
    similarities = queries @ vectors.T
    exact = np.argpartition(-similarities, k, axis=1)[:, :k]  # rows, which are the FAISS ids (order is moot)
    found, shortfall = 0, []
    for q, (query, truth) in enumerate(zip(queries, exact, strict=True)):
        ids, scores = search_dense(index, query, k, None, ef_search)
        found += len(set(ids.tolist()) & set(truth.tolist()))
        exact_kth = float(similarities[q, truth].min())
        shortfall.append(exact_kth - float(scores.min()) if len(scores) else exact_kth)
    return found / (k * len(queries)), float(np.mean(shortfall))


def stage_times(searcher: Searcher, snapshot, queries: list[str], vectors: np.ndarray) -> dict[str, float]:
    """p50 of the two rankers alone: the dense search and BM25 scoring of every row with its top-k."""
    from retrieval.search import top_rows

    dense_ms, bm25_ms = [], []
    for query, vector in zip(queries, vectors, strict=True):
        t0 = time.perf_counter()
        search_dense(snapshot.dense, vector, searcher.settings.candidates, None, searcher.settings.hnsw_ef_search)
        t1 = time.perf_counter()
        scores = snapshot.bm25.scores(query)
        pool = np.flatnonzero(scores > 0)
        top_rows(scores[pool], searcher.settings.candidates)
        t2 = time.perf_counter()
        dense_ms.append((t1 - t0) * 1000)
        bm25_ms.append((t2 - t1) * 1000)
    return {"dense_p50_ms": percentile(dense_ms, 50), "bm25_p50_ms": percentile(bm25_ms, 50)}


_material = None


def _get_material():
    global _material
    if _material is None:
        _material = real_material()
    return _material


def scale_latency(size: int, queries_timed: int = 200) -> list[tuple[str, dict[str, float]]]:
    material = _get_material()
    _, _, query_texts, query_vectors = material
    base = settings_for("msmarco-sample")
    searcher = Searcher(base)
    rows = []
    started = time.perf_counter()
    snapshot, build_seconds = synthetic_snapshot(size, base, material)
    kind = "HNSW" if is_approximate(snapshot.dense) else "exact"
    console.print(
        f"synthetic {size:,}: built in {time.perf_counter() - started:.0f}s ({kind} build {build_seconds:.0f}s)"
    )
    queries = query_texts[:queries_timed]
    core = time_core(searcher, snapshot, queries, with_embedding=False)
    full = time_core(searcher, snapshot, queries, with_embedding=True)
    recall_queries = query_vectors[:200]
    stages = stage_times(searcher, snapshot, queries, query_vectors[:queries_timed])
    console.print(f"synthetic {size:,}: ranker stages alone {stages}")
    if kind == "HNSW":
        recall, shortfall = dense_quality(snapshot.dense, snapshot.vectors, recall_queries, base.hnsw_ef_search)
        core["ann_recall@10"] = full["ann_recall@10"] = recall
        console.print(f"synthetic {size:,}: 10th cosine shortfall against exact {shortfall:.4f}")
        for ef in (192, 384, 768):  # what a larger graph search buys at this size
            wider = Searcher(base.model_copy(update={"hnsw_ef_search": ef}))
            figures = time_core(wider, snapshot, queries, with_embedding=False)
            figures["ann_recall@10"], shortfall = dense_quality(snapshot.dense, snapshot.vectors, recall_queries, ef)
            rows.append((f"synthetic {size:,} (HNSW efSearch={ef}), retrieval core", figures))
            console.print(f"synthetic {size:,} efSearch={ef}: 10th cosine shortfall {shortfall:.4f}")
    rows.append((f"synthetic {size:,} ({kind}), retrieval core", core))
    rows.append((f"synthetic {size:,} ({kind}), core + query embedding", full))
    if kind == "exact" and size >= 10_000:  # the same size on HNSW, side by side
        hnsw_settings = base.model_copy(update={"ann_min_chunks": 1})
        t0 = time.perf_counter()
        snapshot.dense = build_dense(snapshot.vectors, np.arange(len(snapshot.vectors)), hnsw_settings)
        console.print(f"synthetic {size:,}: HNSW build {time.perf_counter() - t0:.0f}s")
        core = time_core(searcher, snapshot, queries, with_embedding=False)
        core["ann_recall@10"] = dense_recall(snapshot.dense, snapshot.vectors, recall_queries, base.hnsw_ef_search)
        rows.append((f"synthetic {size:,} (HNSW), retrieval core", core))
    return rows


def ann_recall_on_real(devset: DevSet) -> dict[str, float]:
    """HNSW against exact search on a real dev-set index, with the shipped HNSW settings."""
    searcher = Searcher(devset.settings)
    snapshot = searcher.snapshot()
    vectors = np.asarray(snapshot.vectors)
    queries = searcher.embedder.embed([q.text for q in devset.queries[:300]])
    settings = devset.settings.model_copy(update={"ann_min_chunks": 1})
    index = build_dense(vectors, np.arange(len(vectors), dtype=np.int64), settings)
    figures = {
        f"efSearch={ef}": dense_recall(index, vectors, queries, ef) for ef in (16, 32, 64, settings.hnsw_ef_search)
    }
    console.print(f"HNSW recall@10 against exact on {devset.name} ({len(vectors)} chunks): {figures}")
    return figures


def print_latency(rows: list[tuple[str, dict[str, float]]]) -> None:
    table = Table(
        "index", "p50 ms", "p95 ms", "queries/s", "ANN recall@10", title="search latency (single query, warm)"
    )
    for name, figures in rows:
        recall = figures.get("ann_recall@10")
        table.add_row(
            name,
            f"{figures['p50_ms']:.2f}",
            f"{figures['p95_ms']:.2f}",
            f"{figures['qps']:.0f}",
            "" if recall is None else f"{recall:.3f}",
        )
    console.print(table)
