"""Fusion calibrated per index version, without labels: pseudo-queries drawn from the corpus's own sentences.

The shipped fusion weights (penny.Settings) were chosen on msmarco and tatqa, where MiniLM is a strong ranker. On
a corpus whose embedder is weak (a scientific vocabulary it never learned) BM25 should count for more, and no
labels exist there to say so. So at publish time a seeded, bounded sample of chunks each gives one pseudo-query:
a few content words of one prose sentence of the chunk. It is ranked by both rankers over the new version as if
that sentence were not indexed (the inverse cloze task): the chunk it came from, scored on the rest of its text,
is the passage that answers it. The fused ranking is scored (MRR@10) for a grid of shifts of the dense weight.

Pseudo-queries still favour BM25 on every corpus, even with the sentence hidden: on the dev sets their best shift
is -1.5 to -2.5 where the labels' best is 0, so taking it as it is would lose there. What they do measure
reliably is how strong dense is against BM25 on this corpus. Where that lies within the range measured on the dev
sets (`fusion_calibration_dense_ratio`), the configured weights stand; outside it, the shifts toward the stronger
ranker are tried, and the best is kept when it beats the configured weights on the pseudo-queries by more than a
margin and two standard errors. The result is written beside the version (calibration.json) with what it cost,
and the searcher applies it in place of the fixed weights.

A shift moves every dense weight (plain, numeric, long; retrieval/fusion.py) by the same amount in log-odds. Under
convex fusion, w * dense + (1 - w) * bm25, that multiplies BM25's weight relative to dense's by exp(-shift) for
every query alike, so the query-dependent rules chosen on the dev sets keep their order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from penny import Settings
from retrieval.analysis import analyze
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
PROSE_SHARE = 0.8  # of a sentence's content words made of letters alone
MIN_CONTEXT_WORDS = 8  # what is left of the row once the sentence is hidden must still say something
_SPARE_ROWS = 5  # dense rows fetched beyond the depth, for those holding the sentence to leave
_HOLDER_SEARCH = 4  # rows holding the sentence are looked for in BM25's top this many times the depth
KEPT_WORDS = (3, 8)  # a pseudo-query keeps between these many content words of its sentence, like a short query
RANK_DEPTH = 10
# a gain must also stand this many standard errors of the per-query differences clear of zero: on 200 pseudo-queries
# the best of ten shifts beats the configured one by ~0.01 MRR@10 by chance alone (msmarco, two seeds)
SIGNIFICANCE = 2.0

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(STOPWORDS_EN)
_EDGE_PUNCTUATION = ".,;:!?()[]{}\"'`*_|<>"


@dataclass(frozen=True)
class PseudoQuery:
    text: str
    row: int  # the index row it was drawn from: the one passage that answers it
    sentence: str  # the sentence it was drawn from, hidden from every row while the query is ranked ("": none)
    context: str  # the row's text without that sentence: what the row looks like to this query


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
    texts_embedded: int  # each pseudo-query and its row's text without the sentence
    embed_seconds: float
    seconds: float
    reason: str

    def apply(self, method: FusionMethod) -> FusionMethod:
        return method.shifted(self.dense_shift)


# ---------------------------------------------------------------- pseudo-queries


def is_prose(sentence: str) -> bool:
    """Mostly words, as people ask: a table row or a list of figures makes a query no one types, and one that
    only BM25 can match (sentence embeddings read digits poorly), which would bias calibration toward BM25."""
    words = content_words(sentence)
    return (
        sentence.count("|") < 2  # a table row as the indexer writes tables
        and len(words) >= MIN_SENTENCE_WORDS
        and sum(word.isalpha() for word in words) >= PROSE_SHARE * len(words)
    )


def content_words(sentence: str) -> list[str]:
    """The sentence's words that are not stop words, stripped of surrounding punctuation (table bars, bullets)."""
    words = (word.strip(_EDGE_PUNCTUATION) for word in sentence.split())
    return [word for word in words if any(c.isalnum() for c in word) and word.lower() not in _STOPWORDS]


def pseudo_queries(texts: list[str], count: int, seed: int = SEED) -> list[PseudoQuery]:
    """Up to `count` pseudo-queries from a seeded sample of rows, at most one per row. A row gives one when some
    sentence of it has at least MIN_SENTENCE_WORDS content words and the rest of the row MIN_CONTEXT_WORDS; the
    query keeps a random few of that sentence's content words, in order."""
    rng = np.random.default_rng(seed)
    found: list[PseudoQuery] = []
    for row in rng.permutation(len(texts))[: 4 * count]:  # bounded: a corpus of tables may have few sentences
        text = texts[row]
        usable = [
            (sentence, context)
            for sentence in (s.strip() for s in _SENTENCE_END.split(text))
            if is_prose(sentence) and len(content_words(context := text.replace(sentence, " ", 1))) >= MIN_CONTEXT_WORDS
        ]
        if not usable:
            continue
        sentence, context = usable[int(rng.integers(len(usable)))]
        words = content_words(sentence)
        kept = int(rng.integers(KEPT_WORDS[0], KEPT_WORDS[1] + 1))
        positions = np.sort(rng.choice(len(words), size=min(kept, len(words) - 1), replace=False))
        found.append(PseudoQuery(" ".join(words[i] for i in positions), int(row), sentence, context))
        if len(found) == count:
            break
    return found


# ---------------------------------------------------------------- both rankers over the version, sentence hidden


def hidden_sentence_candidates(
    snapshot: Snapshot, texts: list[str], queries: list[PseudoQuery], vectors: np.ndarray, context_vectors: np.ndarray,
    depth: int,
) -> list[Candidates]:  # fmt: skip
    """Each query's dense and BM25 top `depth` over the whole version, both scores exact for their union (what
    Searcher.candidates gathers for an unfiltered query), as if the query's sentence were not in the index: the
    source row is scored on its text without it, and other rows holding the whole sentence (overlapping chunks,
    copies) are left out. Without hiding it, a query made of the sentence's own words is an exact-match test
    that BM25 wins on any corpus."""
    depth = min(depth, len(snapshot))
    _, dense_ids = snapshot.dense.search(np.ascontiguousarray(vectors, dtype=np.float32), depth + _SPARE_ROWS)
    found = []
    for query, vector, context_vector, ids in zip(queries, vectors, context_vectors, dense_ids, strict=True):
        bm25_all = np.maximum(snapshot.bm25.scores(query.text), 0).astype(np.float64)
        dense_top = np.array([snapshot.row_of_chunk[int(i)] for i in ids if i >= 0], dtype=np.int64)
        hidden = _holding_the_sentence(query, texts, np.union1d(dense_top, _top(bm25_all, _HOLDER_SEARCH * depth)))
        bm25_all[hidden] = 0.0
        bm25_all[query.row] = _bm25_without_sentence(snapshot, query)

        def dense_of(rows: np.ndarray, vector=vector, source=query.row, hidden_score=float(context_vector @ vector)):
            scores = np.asarray(snapshot.vectors[rows] @ vector, dtype=np.float64)
            scores[rows == source] = hidden_score
            return scores

        pool = np.setdiff1d(np.union1d(dense_top, [query.row]), hidden)
        dense_rows = pool[np.argsort(-dense_of(pool), kind="stable")[:depth]]
        bm25_rows = _top(bm25_all, depth)
        rows = np.union1d(dense_rows, bm25_rows)
        position = {int(row): i for i, row in enumerate(rows)}
        found.append(
            Candidates(
                rows=rows,
                dense=dense_of(rows).astype(np.float32),
                bm25=bm25_all[rows].astype(np.float32),
                dense_rank={position[int(row)]: rank for rank, row in enumerate(dense_rows)},
                bm25_rank={position[int(row)]: rank for rank, row in enumerate(bm25_rows)},
            )
        )
    return found


def _holding_the_sentence(query: PseudoQuery, texts: list[str], near: np.ndarray) -> np.ndarray:
    """Rows other than the source holding the query's whole sentence, among `near`: such a row holds every query
    word too, so it is high in BM25's ranking (or dense's) unless hundreds of rows repeat the sentence."""
    if not query.sentence:
        return np.zeros(0, dtype=np.int64)
    return np.array([r for r in near if r != query.row and query.sentence in texts[r]], dtype=np.int64)


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """Positions of the `depth` highest positive scores, best first."""
    positive = np.flatnonzero(scores > 0)
    return positive[np.argsort(-scores[positive], kind="stable")[:depth]]


def _bm25_without_sentence(snapshot: Snapshot, query: PseudoQuery) -> float:
    """The source row's BM25 score counting only the query words found elsewhere in it. BM25 adds one term at a
    time, so the index's own per-word scores of the row give it; only the row's length and the counts of words
    also found elsewhere still include the hidden sentence."""
    elsewhere = set(analyze(query.context))
    return float(
        sum(
            max(0.0, float(snapshot.bm25.scores(word)[query.row]))
            for word in query.text.split()
            if (terms := analyze(word)) and set(terms) <= elsewhere
        )
    )


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
    embedded = embedder.embed([q.text for q in queries] + [q.context for q in queries])
    embed_seconds = time.perf_counter() - embed_started
    vectors, context_vectors = embedded[: len(queries)], embedded[len(queries) :]
    depth = max(settings.candidates, 2 * RANK_DEPTH)  # as deep as search gathers for k = 10
    candidates = hidden_sentence_candidates(snapshot, texts, queries, vectors, context_vectors, depth)
    sources = [found.rows == query.row for query, found in zip(queries, candidates, strict=True)]
    keys = [snapshot.text_keys[found.rows] for found in candidates]

    def ranks(score: Callable[[PseudoQuery, Candidates], np.ndarray]) -> np.ndarray:
        found = zip(queries, candidates, sources, keys, strict=True)
        return np.array([reciprocal_rank(score(q, c), source, k) for q, c, source, k in found])

    def mrr(score: Callable[[PseudoQuery, Candidates], np.ndarray]) -> float:
        return float(ranks(score).mean())

    per_query = {
        shift: ranks(lambda q, c, shift=shift: fuse_scores(c, configured.shifted(shift), q.text)) for shift in SHIFTS
    }
    by_shift = {shift: float(values.mean()) for shift, values in per_query.items()}
    mrr_dense = mrr(lambda q, c: c.dense.astype(np.float64))
    mrr_bm25 = mrr(lambda q, c: _only_ranked(c.bm25, c.bm25_rank))
    tried, reason = shifts_to_try(mrr_dense, mrr_bm25, settings)
    best = max(tried, key=lambda shift: (by_shift[shift], -abs(shift)))  # a tie goes to the smaller move
    gain = by_shift[best] - by_shift[0.0]
    noise = SIGNIFICANCE * standard_error(per_query[best] - per_query[0.0])
    keep = gain > max(settings.fusion_calibration_margin, noise)
    if len(tried) > 1:
        reason += (
            f"; shift {best:+.1f} gains {gain:.4f} MRR@10 on them, {'over' if keep else 'within'} the margin (the "
            f"larger of {settings.fusion_calibration_margin} and {SIGNIFICANCE} standard errors, {noise:.4f})"
        )
    return Calibration(
        dense_shift=best if keep else 0.0,
        pseudo_queries=len(queries),
        mrr_configured=round(by_shift[0.0], 4),
        mrr_calibrated=round(by_shift[best if keep else 0.0], 4),
        mrr_dense=round(mrr_dense, 4),
        mrr_bm25=round(mrr_bm25, 4),
        mrr_by_shift={f"{shift:+.1f}": round(value, 4) for shift, value in by_shift.items()},
        texts_embedded=len(embedded),
        embed_seconds=round(embed_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        reason=reason,
    )


def shifts_to_try(mrr_dense: float, mrr_bm25: float, settings: Settings) -> tuple[float, ...]:
    """Which shifts may replace the configured weights, by how strong dense is against BM25 on the pseudo-queries.

    Pseudo-queries favour BM25 on every corpus (their words come from the passage's own sentence): on the dev sets
    the configured weights were chosen on, their best shift is -1.5 to -2.5 while the labels' best is 0. So their
    best shift is not taken as it is. The configured weights hold where dense's pseudo-query MRR@10 over BM25's
    lies in the range measured on those sets; outside it, the shifts toward the ranker that is stronger than on
    any of them are tried."""
    ratio = mrr_dense / mrr_bm25 if mrr_bm25 > 0 else math.inf
    low, high = settings.fusion_calibration_dense_ratio
    described = f"dense/BM25 MRR@10 on pseudo-queries {mrr_dense:.3f}/{mrr_bm25:.3f}"
    if ratio < low:
        return tuple(s for s in SHIFTS if s <= 0), f"{described}, below {low}: dense is weak here"
    if ratio > high:
        return tuple(s for s in SHIFTS if s >= 0), f"{described}, above {high}: BM25 is weak here"
    return (0.0,), f"{described}, within [{low}, {high}] where the configured weights were chosen"


def standard_error(differences: np.ndarray) -> float:
    """Of the mean of paired per-query differences."""
    return float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else 0.0


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
        "fusion calibration of %s: dense shift %+.1f (%s); %d texts embedded in %.2fs, %.2fs in all",
        folder.name, calibration.dense_shift, calibration.reason, calibration.texts_embedded,
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
    if data.pop("format", None) != FORMAT_VERSION or set(data) != {field.name for field in fields(Calibration)}:
        return None  # another format: search keeps the configured weights rather than guess
    return Calibration(**data)


def fusion_for_version(settings: Settings, folder: Path) -> FusionMethod:
    """The fusion search uses on the version in `folder`: the configured one, shifted by the version's
    calibration unless calibration is switched off."""
    method = FusionMethod.from_settings(settings)
    calibration = load_calibration(folder) if settings.fusion_calibration and method.kind == "convex" else None
    return calibration.apply(method) if calibration else method
