"""The probability that the top passage contains the answer: logistic regression over a few ranking features.

The coefficients are fitted on the dev sets by eval/fit_confidence.py and shipped as confidence.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.analysis import analyze

if TYPE_CHECKING:
    from penny import Passage
    from retrieval.search import Candidates

FEATURES = (
    "top_dense",  # cosine similarity of the best passage
    "top_bm25_norm",  # its BM25 score over the query's best possible (saturates at 1)
    "dense_margin",  # cosine gap between first and second passage
    "fused_margin",  # fused-score gap between first and second passage
    "rankers_agree",  # 1 when the best passage is in both rankers' top 3
    "term_coverage",  # share of query terms that occur in the best passage
)

PACKAGED = Path(__file__).with_name("confidence.json")


def features(query: str, passages: list[Passage], candidates: Candidates, order: list[int]) -> dict[str, float]:
    if not passages:
        return dict.fromkeys(FEATURES, 0.0)
    top, second = passages[0], passages[1] if len(passages) > 1 else None
    terms = set(analyze(query))
    covered = terms & set(analyze(top.chunk.text + " " + top.chunk.title + " " + top.chunk.section))
    best = order[0]
    agree = candidates.dense_rank.get(best, 99) < 3 and candidates.bm25_rank.get(best, 99) < 3
    top_bm25 = top.bm25_score or 0.0
    return {
        "top_dense": top.dense_score or 0.0,
        "top_bm25_norm": min(1.0, top_bm25 / (3.0 * max(1, len(terms)))),
        "dense_margin": (top.dense_score or 0.0) - ((second.dense_score or 0.0) if second else 0.0),
        "fused_margin": top.score - (second.score if second else 0.0),
        "rankers_agree": 1.0 if agree else 0.0,
        "term_coverage": len(covered) / len(terms) if terms else 0.0,
    }


@dataclass(frozen=True)
class ConfidenceModel:
    weights: dict[str, float]
    bias: float

    @classmethod
    def packaged(cls) -> ConfidenceModel:
        data = json.loads(PACKAGED.read_text())
        return cls(weights=data["weights"], bias=data["bias"])

    def predict(self, values: dict[str, float]) -> float:
        z = self.bias + sum(self.weights.get(name, 0.0) * values[name] for name in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))
