"""Fusing dense and BM25 candidates: a convex combination of min-max normalised scores, or reciprocal rank fusion.

Which one, and its weight, is a setting chosen by measurement (eval/bench_retrieval.py), not by taste.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from penny import Settings

if TYPE_CHECKING:
    from retrieval.search import Candidates


def min_max(scores: np.ndarray) -> np.ndarray:
    if len(scores) == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high > low:
        return (scores - low) / (high - low)
    return np.full_like(scores, 1.0 if high > 0 else 0.0)


def convex(dense: np.ndarray, bm25: np.ndarray, dense_weight: float) -> np.ndarray:
    return dense_weight * min_max(dense) + (1.0 - dense_weight) * min_max(bm25)


def reciprocal_rank(size: int, dense_rank: dict[int, int], bm25_rank: dict[int, int], k: int) -> np.ndarray:
    fused = np.zeros(size, dtype=np.float32)
    for ranks in (dense_rank, bm25_rank):
        for position, rank in ranks.items():
            fused[position] += 1.0 / (k + rank + 1)
    return fused


def fuse(candidates: Candidates, settings: Settings) -> np.ndarray:
    """One fused score per candidate, higher is better."""
    if settings.fusion == "rrf":
        return reciprocal_rank(len(candidates.rows), candidates.dense_rank, candidates.bm25_rank, settings.rrf_k)
    return convex(candidates.dense, candidates.bm25, settings.fusion_dense_weight)
