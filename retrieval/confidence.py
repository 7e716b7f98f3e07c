"""The probability that the top passage contains the answer: logistic regression over a few ranking features.

Every feature is built so that a larger value should mean a likelier answer, and the fit keeps every weight
non-negative (eval/fit_confidence.py), so the confidence can only rise when the evidence gets stronger. The
fitted coefficients are shipped as confidence.json beside this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.analysis import analyze
from retrieval.candidates import Candidates

FEATURES = (
    "top_dense",  # cosine similarity of the best passage
    "top_bm25_norm",  # its BM25 score over 3 per query term (saturates at 1)
    "dense_margin",  # cosine gap between the first and second passage
    "fused_margin",  # fused-score gap between the first and second passage
    "rankers_agree",  # 1 when the best passage is in both rankers' top 3
    "dense_first",  # 1 when the dense ranker put the best passage first
    "bm25_first",  # 1 when BM25 put the best passage first
    "term_coverage",  # share of query terms that occur in the best passage
    "narrow_search",  # 1 for a single candidate, falling to 0 at 100 (a scope or filter leaves few passages)
)

PACKAGED = Path(__file__).with_name("confidence.json")


def features_from_candidates(
    query: str, candidates: Candidates, fused: np.ndarray, order: list[int], top_text: str
) -> dict[str, float]:
    """The features of one ranked candidate list; `order` is the candidates' positions best first and
    `top_text` the best passage's text with its heading."""
    if not order:
        return dict.fromkeys(FEATURES, 0.0)
    best = order[0]
    second = order[1] if len(order) > 1 else None
    terms = set(analyze(query))
    dense_rank, bm25_rank = candidates.dense_rank.get(best, 999), candidates.bm25_rank.get(best, 999)
    top_dense = float(candidates.dense[best])
    return {
        "top_dense": top_dense,
        "top_bm25_norm": min(1.0, float(candidates.bm25[best]) / (3.0 * max(1, len(terms)))),
        "dense_margin": max(0.0, top_dense - float(candidates.dense[second])) if second is not None else top_dense,
        "fused_margin": float(fused[best] - fused[second]) if second is not None else float(fused[best]),
        "rankers_agree": 1.0 if dense_rank < 3 and bm25_rank < 3 else 0.0,
        "dense_first": 1.0 if dense_rank == 0 else 0.0,
        "bm25_first": 1.0 if bm25_rank == 0 else 0.0,
        "term_coverage": len(terms & set(analyze(top_text))) / len(terms) if terms else 0.0,
        "narrow_search": max(0.0, 1.0 - math.log10(max(1, len(candidates.rows))) / 2.0),
    }


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic model over named features: the form every shipped estimate of Penny's takes."""

    weights: dict[str, float]
    bias: float

    @classmethod
    def of(cls, data: dict) -> Logistic:
        return cls(weights=data["weights"], bias=data["bias"])

    def predict(self, values: dict[str, float]) -> float:
        z = self.bias + sum(weight * values.get(name, 0.0) for name, weight in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class ConfidenceModel(Logistic):
    note: str = ""

    @classmethod
    def packaged(cls) -> ConfidenceModel:
        return cls.load(PACKAGED)

    @classmethod
    def load(cls, path: Path) -> ConfidenceModel:
        data = json.loads(path.read_text())
        return cls(weights=data["weights"], bias=data["bias"], note=data.get("note", ""))
