"""Dense search over FAISS: exact inner product while the index is small, HNSW above a configured size.

An index version has one dense index per segment (retrieval/snapshot.py); FAISS ids are rows of that segment.
Filters and deletions are FAISS ID selectors, so the search itself only visits allowed, live rows.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from penny import Settings


def build_dense(vectors: np.ndarray, chunk_ids: np.ndarray, settings: Settings) -> faiss.Index:
    dimension = vectors.shape[1]
    if len(vectors) >= settings.ann_min_chunks:
        inner = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = max(40, 2 * settings.hnsw_m)
        inner.hnsw.efSearch = settings.hnsw_ef_search
    else:
        inner = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), chunk_ids.astype(np.int64))
    return index


def is_approximate(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSWFlat)


def save_dense(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_dense(path: Path, settings: Settings) -> faiss.Index:
    index = faiss.read_index(str(path))
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        inner.hnsw.efSearch = settings.hnsw_ef_search
    return index


def search_dense(
    index: faiss.Index,
    query: np.ndarray,
    k: int,
    allowed_ids: np.ndarray | None,
    ef_search: int,
    excluded_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, cosine similarities) among `allowed_ids` (all when None), never one of `excluded_ids`."""
    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    params = None
    selector = None
    if allowed_ids is not None:
        selector = faiss.IDSelectorBatch(allowed_ids.astype(np.int64))
    elif excluded_ids is not None and len(excluded_ids):
        excluded = faiss.IDSelectorBatch(excluded_ids.astype(np.int64))  # alive until the search returns
        selector = faiss.IDSelectorNot(excluded)
    if selector is not None:
        if is_approximate(index):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef_search, k))
        else:
            params = faiss.SearchParameters(sel=selector)
    elif is_approximate(index):
        params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))
    scores, ids = index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]
