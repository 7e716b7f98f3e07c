"""Fusing dense and BM25 candidates: a convex combination of normalised scores, or reciprocal rank fusion.

Which one, with which weight and normalisation, is a setting chosen by measurement on the dev sets
(eval/bench_retrieval.py prints the sweep), not by taste. The convex weight may depend on the query, chosen by
the same sweep: for a query holding a number ("revenue in 2019", "error 0x80070005") a sentence embedding barely
tells one number from another, and a long, specific question gives BM25 many discriminating terms, while a short
query is where vocabulary mismatch hurts BM25 most.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from penny import Settings
from retrieval.analysis import analyze
from retrieval.candidates import Candidates

Normalisation = Literal["min-max", "z-score", "max"]
_DIGIT = re.compile(r"\d")


def has_number(query: str) -> bool:
    return bool(_DIGIT.search(query))


def is_long(query: str, terms: int) -> bool:
    return len(analyze(query)) > terms


# The settings FusionMethod.from_settings reads: what shapes fused scores, for keys and records that must follow them.
FUSION_SETTINGS = (
    "fusion",
    "fusion_dense_weight",
    "fusion_normalisation",
    "fusion_numeric_dense_weight",
    "fusion_long_query_terms",
    "fusion_long_dense_weight",
    "rrf_k",
)


@dataclass(frozen=True)
class FusionMethod:
    kind: Literal["convex", "rrf"]
    dense_weight: float = 0.5
    normalisation: Normalisation = "min-max"
    rrf_k: int = 60
    numeric_dense_weight: float | None = None  # the dense weight for queries with a digit; None: dense_weight
    long_query_terms: int | None = None  # queries with more analysed terms than this are "long"
    long_dense_weight: float | None = None  # the dense weight for long queries (without a digit)

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionMethod:
        return cls(
            kind=settings.fusion,
            dense_weight=settings.fusion_dense_weight,
            normalisation=settings.fusion_normalisation,
            rrf_k=settings.rrf_k,
            numeric_dense_weight=settings.fusion_numeric_dense_weight,
            long_query_terms=settings.fusion_long_query_terms,
            long_dense_weight=settings.fusion_long_dense_weight,
        )

    def weight_for(self, query: str) -> float:
        if self.numeric_dense_weight is not None and has_number(query):
            return self.numeric_dense_weight
        if (
            self.long_dense_weight is not None
            and self.long_query_terms is not None
            and is_long(query, self.long_query_terms)
        ):
            return self.long_dense_weight
        return self.dense_weight

    def shifted(self, dense_shift: float) -> FusionMethod:
        """Every dense weight moved by `dense_shift` in log-odds (retrieval/calibration.py): BM25's weight relative
        to dense's is multiplied by exp(-dense_shift) for every query alike. A weight of 0 or 1 (one ranker alone)
        stays as it is."""
        if dense_shift == 0.0 or self.kind != "convex":
            return self
        return replace(
            self,
            dense_weight=shift_weight(self.dense_weight, dense_shift),
            numeric_dense_weight=shift_weight(self.numeric_dense_weight, dense_shift),
            long_dense_weight=shift_weight(self.long_dense_weight, dense_shift),
        )

    def __str__(self) -> str:
        if self.kind == "rrf":
            return f"rrf(k={self.rrf_k})"
        rules = ""
        if self.long_dense_weight is not None:
            rules += f", over {self.long_query_terms} terms {self.long_dense_weight:.2f}"
        if self.numeric_dense_weight is not None:
            rules += f", with a number {self.numeric_dense_weight:.2f}"
        return f"convex({self.normalisation}, dense_weight={self.dense_weight:.2f}{rules})"


def shift_weight(weight: float | None, shift: float) -> float | None:
    if weight is None or weight in (0.0, 1.0):
        return weight
    return 1.0 / (1.0 + math.exp(-(math.log(weight / (1.0 - weight)) + shift)))


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scores mapped onto [0, 1] by the candidates' own range."""
    if len(scores) == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high > low:
        return (scores - low) / (high - low)
    return np.full_like(scores, 1.0 if high > 0 else 0.0)


def z_score(scores: np.ndarray) -> np.ndarray:
    """Scores in standard deviations from the candidates' mean."""
    if len(scores) == 0:
        return scores
    spread = float(scores.std())
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)


def over_max(scores: np.ndarray) -> np.ndarray:
    """Scores over the best one, with 0 as the fixed floor (both cosine and BM25 are 0 for an unrelated text)."""
    if len(scores) == 0:
        return scores
    high = float(scores.max())
    return np.maximum(scores, 0) / high if high > 0 else np.zeros_like(scores)


NORMALISERS = {"min-max": min_max, "z-score": z_score, "max": over_max}


def convex(dense: np.ndarray, bm25: np.ndarray, dense_weight: float, normalisation: Normalisation = "min-max"):
    normalise = NORMALISERS[normalisation]
    return dense_weight * normalise(dense) + (1.0 - dense_weight) * normalise(bm25)


def reciprocal_rank(size: int, dense_rank: dict[int, int], bm25_rank: dict[int, int], k: int) -> np.ndarray:
    """Sum over both rankers of 1 / (k + rank), ranks counted from 1; a ranker that did not return a candidate
    adds nothing for it."""
    fused = np.zeros(size, dtype=np.float64)
    for ranks in (dense_rank, bm25_rank):
        for position, rank in ranks.items():
            fused[position] += 1.0 / (k + rank + 1)
    return fused


def fuse_scores(candidates: Candidates, method: FusionMethod, query: str = "") -> np.ndarray:
    """One fused score per candidate, higher is better."""
    if method.kind == "rrf":
        return reciprocal_rank(len(candidates.rows), candidates.dense_rank, candidates.bm25_rank, method.rrf_k)
    dense = candidates.dense.astype(np.float64)
    bm25 = candidates.bm25.astype(np.float64)
    return convex(dense, bm25, method.weight_for(query), method.normalisation)


def fuse(candidates: Candidates, settings: Settings, query: str = "") -> np.ndarray:
    return fuse_scores(candidates, FusionMethod.from_settings(settings), query)
