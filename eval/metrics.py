"""Ranking and answer metrics as pure functions of one query's ranking; average them over queries yourself.

`ranked` is the list of retrieved ids, best first (duplicates count once, at their first position);
`relevant` maps an id to its graded relevance (qrels; 0 or absent means not relevant).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from retrieval.analysis import STOPWORDS_EN

_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(STOPWORDS_EN)


def _unique(ranked: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [item for item in ranked if not (item in seen or seen.add(item))]


def _relevant_ids(relevant: Mapping[str, float]) -> set[str]:
    return {item for item, grade in relevant.items() if grade > 0}


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Share of the relevant ids found in the top k (0 when nothing is relevant)."""
    wanted = _relevant_ids(relevant)
    if not wanted:
        return 0.0
    return len(wanted & set(_unique(ranked)[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """1/rank of the first relevant id within the top k, else 0 (MRR@k when averaged)."""
    wanted = _relevant_ids(relevant)
    for position, item in enumerate(_unique(ranked)[:k], start=1):
        if item in wanted:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """Normalised discounted cumulative gain with linear gains (grade / log2(rank + 1)), as trec_eval computes it."""
    gains = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
    ideal = sum(grade / math.log2(position + 1) for position, grade in enumerate(gains, start=1))
    if ideal == 0:
        return 0.0
    found = sum(
        relevant.get(item, 0) / math.log2(position + 1)
        for position, item in enumerate(_unique(ranked)[:k], start=1)
        if relevant.get(item, 0) > 0
    )
    return found / ideal


def answer_tokens(text: str) -> set[str]:
    """Lower-cased word tokens of `text` without English stop words (no stemming: figures must match exactly)."""
    return {token for token in _WORD.findall(text.lower()) if token not in _STOPWORDS}


def answer_token_recall(passages: Sequence[str], answers: Sequence[str]) -> float:
    """Best, over the reference answers, share of an answer's tokens that occur in the passages together.

    The proxy for passage relevance where a set has answers but no passage labels (ocp-4.15)."""
    found = answer_tokens(" ".join(passages))
    best = 0.0
    for answer in answers:
        wanted = answer_tokens(answer)
        if wanted:
            best = max(best, len(wanted & found) / len(wanted))
    return best


def mean(values: Iterable[float]) -> float | None:
    """The arithmetic mean; None when there are no values (a figure that is unknown, not zero)."""
    values = list(values)
    return sum(values) / len(values) if values else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default); None when
    there are no values. Every latency percentile in eval is this one."""
    values = list(values)
    return float(np.percentile(values, q)) if values else None


def latency_figures(times_ms: list[float], elapsed_seconds: float) -> dict[str, float | None]:
    """p50 and p95 of timed calls (milliseconds) and their rate over the wall time they took together."""
    return {
        "p50_ms": percentile(times_ms, 50),
        "p95_ms": percentile(times_ms, 95),
        "qps": len(times_ms) / elapsed_seconds,
    }
