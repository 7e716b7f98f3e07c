"""Fusion calibrated per index version, without labels: pseudo-queries drawn from the corpus's own sentences.

The shipped fusion weights (penny.Settings) were chosen on msmarco and tatqa, where MiniLM is a strong ranker. On
a corpus whose embedder is weak (a scientific vocabulary it never learned) BM25 should count for more, and no
labels exist there to say so. So at publish time a seeded, bounded sample of chunks each gives one pseudo-query:
some of the content words of one of its sentences, in order; the chunk it came from (and any chunk holding the
whole sentence) is the passage that answers it. Both rankers run on them over the new version, the fused ranking
is scored (MRR@10) for a grid of shifts of the dense weight, and the best shift is kept only when it beats the
configured weights by more than a margin. It is written beside the version (calibration.json) with what it cost,
and the searcher applies it in place of the fixed weights.

A shift moves every dense weight (plain, numeric, long; retrieval/fusion.py) by the same amount in log-odds. Under
convex fusion, w * dense + (1 - w) * bm25, that multiplies BM25's weight relative to dense's by exp(-shift) for
every query alike, so the query-dependent rules chosen on the dev sets keep their order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from penny import Settings
from retrieval.candidates import Candidates
from retrieval.embedder import Embedder, get_embedder
from retrieval.fusion import FusionMethod, fuse_scores
from retrieval.snapshot import Snapshot

log = logging.getLogger("penny.retrieval.calibration")

FILE_NAME = "calibration.json"
FORMAT_VERSION = 1
SEED = 20240611  # fixed: the same corpus always gets the same pseudo-queries and the same calibration
# log-odds shifts of the dense weight tried; 0 is the configured weights. -3 turns 0.7 into 0.1, +1.5 into 0.91
SHIFTS = tuple(float(s) for s in np.round(np.arange(-3.0, 1.51, 0.5), 2))
MIN_PSEUDO_QUERIES = 30  # fewer say too little to move off the configured weights (a handbook of six files)
MIN_SENTENCE_WORDS = 6
KEPT_WORDS = (3, 8)  # a pseudo-query keeps between these many content words of its sentence, like a short query
RANK_DEPTH = 10

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(STOPWORDS_EN)
_EDGE_PUNCTUATION = ".,;:!?()[]{}\"'`*_|<>"


@dataclass(frozen=True)
class PseudoQuery:
    text: str
    row: int  # the index row it was drawn from
    sentence: str  # the whole sentence: any chunk holding it answers the query too (overlapping chunks)


@dataclass(frozen=True)
class Calibration:
    """What calibrating one index version found. `dense_shift` is what search applies; the rest says why and at
    what cost."""

    dense_shift: float
    pseudo_queries: int
    mrr_configured: float  # MRR@10 on the pseudo-queries with the configured weights
    mrr_calibrated: float  # ... with the chosen shift
    mrr_dense: float  # ... dense alone
    mrr_bm25: float  # ... BM25 alone
    mrr_by_shift: dict[str, float]
    queries_embedded: int
    embed_seconds: float
    seconds: float
    reason: str

    def apply(self, method: FusionMethod) -> FusionMethod:
        return method.shifted(self.dense_shift)


# ---------------------------------------------------------------- pseudo-queries


def content_words(sentence: str) -> list[str]:
    """The sentence's words that are not stop words, stripped of surrounding punctuation (table bars, bullets)."""
    words = (word.strip(_EDGE_PUNCTUATION) for word in sentence.split())
    return [word for word in words if any(c.isalnum() for c in word) and word.lower() not in _STOPWORDS]


def pseudo_queries(texts: list[str], count: int, seed: int = SEED) -> list[PseudoQuery]:
    """Up to `count` pseudo-queries from a seeded sample of rows, at most one per row. A row gives one when some
    sentence of it has at least MIN_SENTENCE_WORDS content words; it keeps a random few of them, in order."""
    rng = np.random.default_rng(seed)
    found: list[PseudoQuery] = []
    for row in rng.permutation(len(texts))[: 4 * count]:  # bounded: a corpus of tables may have few sentences
        sentences = [s.strip() for s in _SENTENCE_END.split(texts[row])]
        usable = [s for s in sentences if len(content_words(s)) >= MIN_SENTENCE_WORDS]
        if not usable:
            continue
        sentence = usable[int(rng.integers(len(usable)))]
        words = content_words(sentence)
        kept = int(rng.integers(KEPT_WORDS[0], KEPT_WORDS[1] + 1))
        positions = np.sort(rng.choice(len(words), size=min(kept, len(words) - 1), replace=False))
        found.append(PseudoQuery(" ".join(words[i] for i in positions), int(row), sentence))
        if len(found) == count:
            break
    return found


# ---------------------------------------------------------------- both rankers over the version


def pseudo_candidates(snapshot: Snapshot, queries: list[str], vectors: np.ndarray, depth: int) -> list[Candidates]:
    """Each query's dense and BM25 top `depth` over the whole version, both scores exact for their union: what
    Searcher.candidates gathers for an unfiltered query, with the dense side in one FAISS batch."""
    depth = min(depth, len(snapshot))
    _, dense_ids = snapshot.dense.search(np.ascontiguousarray(vectors, dtype=np.float32), depth)
    found = []
    for query, vector, ids in zip(queries, vectors, dense_ids, strict=True):
        dense_rows = np.array([snapshot.row_of_chunk[int(i)] for i in ids if i >= 0], dtype=np.int64)
        bm25_all = snapshot.bm25.scores(query) if snapshot.bm25 is not None else np.zeros(len(snapshot))
        pool = np.flatnonzero(bm25_all > 0)
        bm25_rows = pool[np.argsort(-bm25_all[pool], kind="stable")[:depth]]
        rows = np.unique(np.concatenate([dense_rows, bm25_rows]))
        position = {int(row): i for i, row in enumerate(rows)}
        found.append(
            Candidates(
                rows=rows,
                dense=np.asarray(snapshot.vectors[rows] @ vector, dtype=np.float32),
                bm25=np.maximum(bm25_all[rows], 0).astype(np.float32),
                dense_rank={position[int(row)]: rank for rank, row in enumerate(dense_rows)},
                bm25_rank={position[int(row)]: rank for rank, row in enumerate(bm25_rows)},
            )
        )
    return found


def reciprocal_rank(scores: np.ndarray, relevant: np.ndarray, keys: np.ndarray, depth: int = RANK_DEPTH) -> float:
    """1 / rank of the first relevant candidate by score, duplicates folded by text key as search folds them."""
    seen: set[int] = set()
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] == -np.inf:
            break
        if int(keys[i]) in seen:
            continue
        seen.add(int(keys[i]))
        if relevant[i]:
            return 1.0 / len(seen)
        if len(seen) == depth:
            break
    return 0.0


def _only_ranked(values: np.ndarray, ranks: dict[int, int]) -> np.ndarray:
    """One ranker's scores where it returned the candidate, -inf elsewhere (the other ranker's finds)."""
    scores = np.full(len(values), -np.inf)
    for position in ranks:
        scores[position] = values[position]
    return scores


# ---------------------------------------------------------------- calibration


def calibrate(snapshot: Snapshot, texts: list[str], settings: Settings, embedder: Embedder) -> Calibration:
    """Choose the dense-weight shift for this version (texts: the index text of each row, row-aligned) on
    pseudo-queries drawn from it."""
    return calibrate_on(snapshot, texts, pseudo_queries(texts, settings.fusion_calibration_queries), settings, embedder)


def calibrate_on(
    snapshot: Snapshot, texts: list[str], queries: list[PseudoQuery], settings: Settings, embedder: Embedder
) -> Calibration:
    """Choose the shift that ranks the given queries' source rows best, if it beats the configured weights by more
    than the margin."""
    started = time.perf_counter()
    configured = FusionMethod.from_settings(settings)
    if len(queries) < MIN_PSEUDO_QUERIES:
        return _unchanged(len(queries), started, f"{len(queries)} pseudo-queries, fewer than {MIN_PSEUDO_QUERIES}")
    embed_started = time.perf_counter()
    vectors = embedder.embed([q.text for q in queries])
    embed_seconds = time.perf_counter() - embed_started
    candidates = pseudo_candidates(snapshot, [q.text for q in queries], vectors, max(settings.candidates, 20))
    relevant = [
        np.array([row == query.row or query.sentence in texts[row] for row in found.rows])
        for query, found in zip(queries, candidates, strict=True)
    ]
    keys = [snapshot.text_keys[found.rows] for found in candidates]

    def mrr(score: Callable[[PseudoQuery, Candidates], np.ndarray]) -> float:
        return float(
            np.mean(
                [
                    reciprocal_rank(score(q, c), r, k)
                    for q, c, r, k in zip(queries, candidates, relevant, keys, strict=True)
                ]
            )
        )

    by_shift = {
        shift: mrr(lambda q, c, shift=shift: fuse_scores(c, configured.shifted(shift), q.text)) for shift in SHIFTS
    }
    best = max(SHIFTS, key=lambda shift: (by_shift[shift], -abs(shift)))  # a tie goes to the smaller move
    gain = by_shift[best] - by_shift[0.0]
    keep = gain > settings.fusion_calibration_margin
    return Calibration(
        dense_shift=best if keep else 0.0,
        pseudo_queries=len(queries),
        mrr_configured=round(by_shift[0.0], 4),
        mrr_calibrated=round(by_shift[best if keep else 0.0], 4),
        mrr_dense=round(mrr(lambda q, c: c.dense.astype(np.float64)), 4),
        mrr_bm25=round(mrr(lambda q, c: _only_ranked(c.bm25, c.bm25_rank)), 4),
        mrr_by_shift={f"{shift:+.1f}": round(value, 4) for shift, value in by_shift.items()},
        queries_embedded=len(queries),
        embed_seconds=round(embed_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        reason=(
            f"shift {best:+.1f} gains {gain:.4f} MRR@10 on pseudo-queries, "
            f"{'over' if keep else 'within'} the margin {settings.fusion_calibration_margin}"
        ),
    )


def _unchanged(count: int, started: float, reason: str) -> Calibration:
    return Calibration(0.0, count, 0.0, 0.0, 0.0, 0.0, {}, 0, 0.0, round(time.perf_counter() - started, 3), reason)


# ---------------------------------------------------------------- stored with the version


def calibrate_version(settings: Settings, folder: Path, texts: list[str]) -> Calibration | None:
    """Calibrate the version just written to `folder` and store the result there; None when calibration is
    off or does not apply (reciprocal rank fusion has no weight to calibrate, an empty index nothing to rank)."""
    if not settings.fusion_calibration or settings.fusion != "convex" or not texts:
        return None
    calibration = calibrate(Snapshot(folder, settings), texts, settings, get_embedder(settings))
    save_calibration(folder, calibration)
    log.info(
        "fusion calibration of %s: dense shift %+.1f (%s); %d pseudo-queries embedded in %.2fs, %.2fs in all",
        folder.name, calibration.dense_shift, calibration.reason, calibration.queries_embedded,
        calibration.embed_seconds, calibration.seconds,
    )  # fmt: skip
    return calibration


def save_calibration(folder: Path, calibration: Calibration) -> None:
    """Written under a temporary name and renamed: a reader sees the whole file or none (the configured weights)."""
    staging = folder / f".{FILE_NAME}.tmp"
    staging.write_text(json.dumps({"format": FORMAT_VERSION, **asdict(calibration)}, indent=2))
    os.replace(staging, folder / FILE_NAME)


def load_calibration(folder: Path) -> Calibration | None:
    """The version's calibration, or None when it has none (calibration was off, or an older Penny wrote it)."""
    path = folder / FILE_NAME
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.pop("format", None) != FORMAT_VERSION:
        return None
    return Calibration(**data)


def fusion_for_version(settings: Settings, folder: Path) -> FusionMethod:
    """The fusion search uses on the version in `folder`: the configured one, shifted by the version's
    calibration unless calibration is switched off."""
    method = FusionMethod.from_settings(settings)
    calibration = load_calibration(folder) if settings.fusion_calibration and method.kind == "convex" else None
    return calibration.apply(method) if calibration else method
