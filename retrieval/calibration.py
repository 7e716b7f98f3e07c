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
margin and two standard errors. The result is written beside the version (calibration.json,
retrieval/calibration_store.py) with what it cost, and the searcher applies it in place of the fixed weights.

Both rankings are search's own: `Searcher.candidates` over the new version as an unfiltered query of k = 10 gathers
them (each segment's dense top, merged, never a deleted row; BM25 with corpus-wide statistics over live rows), and
only the hidden sentence is taken out afterwards. Texts come from the catalogue, and only those of the sampled rows
and of the candidates, so the cost is bounded by the number of pseudo-queries, not by the index: one batch of twice
that many texts embedded, that many searches. The new version must still be loaded (every segment's dense index and
BM25 counts, which publishing otherwise never reads), so a version whose live rows differ from those of the version
that measured the calibration by less than PENNY_FUSION_CALIBRATION_REUSE_FRACTION of them (rows added or removed,
summed over the versions since) keeps that calibration and loads nothing: so few rows cannot move the rankers'
relative strength on the corpus much. Past that fraction, or under other build or fusion settings, it is measured
again.

A shift moves every dense weight (plain, numeric, long; retrieval/fusion.py) by the same amount in log-odds. Under
convex fusion, w * dense + (1 - w) * bm25, that multiplies BM25's weight relative to dense's by exp(-shift) for
every query alike, so the query-dependent rules chosen on the dev sets keep their order.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from penny import Settings
from retrieval.analysis import STOPWORDS_EN, analyze
from retrieval.calibration_store import Calibration, load_calibration, save_calibration
from retrieval.candidates import Candidates
from retrieval.fusion import FUSION_SETTINGS, FusionMethod, fuse_scores
from retrieval.search import Searcher, SearchFilter, fold_duplicates
from retrieval.snapshot import Layout, Snapshot, read_manifest, version_folder

log = logging.getLogger("penny.retrieval.calibration")

SEED = 20240611  # fixed: the same live chunks always get the same pseudo-queries and the same calibration
# log-odds shifts of the dense weight tried; 0 is the configured weights. -3 turns 0.7 into 0.1, +1.5 into 0.91
SHIFTS = tuple(float(s) for s in np.round(np.arange(-3.0, 1.51, 0.5), 2))
MIN_PSEUDO_QUERIES = 30  # fewer say too little to move off the configured weights (a handbook of six files)
MIN_SENTENCE_WORDS = 6
PROSE_SHARE = 0.8  # of a sentence's content words made of letters alone
MIN_CONTEXT_WORDS = 8  # what is left of the row once the sentence is hidden must still say something
ROWS_PER_QUERY = 4  # rows sampled (and their texts read) per pseudo-query wanted: a corpus of tables has few sentences
KEPT_WORDS = (3, 8)  # a pseudo-query keeps between these many content words of its sentence, like a short query
RANK_DEPTH = 10
# a gain must also stand this many standard errors of the per-query differences clear of zero: on 200 pseudo-queries
# the best of ten shifts beats the configured one by ~0.01 MRR@10 by chance alone (msmarco, two seeds)
SIGNIFICANCE = 2.0
# what a calibration is measured under: another value of any of these measures it again rather than reuse it
MEASURED_BUILD_STAGES = ("embedding", "bm25", "ann")
MEASURED_SETTINGS = (
    *FUSION_SETTINGS,
    "candidates",
    "hnsw_ef_search",
    "fusion_calibration_queries",
    "fusion_calibration_margin",
    "fusion_calibration_dense_ratio",
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(STOPWORDS_EN)
_EDGE_PUNCTUATION = ".,;:!?()[]{}\"'`*_|<>"

# The index text (heading and text, retrieval/indexer.py's index_text) of each chunk id given, in that order.
TextsOf = Callable[[np.ndarray], list[str]]


@dataclass(frozen=True)
class PseudoQuery:
    text: str
    row: int  # the index row it was drawn from: the one passage that answers it
    sentence: str  # the sentence it was drawn from, hidden from every row while the query is ranked ("": none)
    context: str  # the row's text without that sentence: what the row looks like to this query


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


def sample_rows(snapshot: Snapshot, count: int, rng: np.random.Generator) -> np.ndarray:
    """A random sample of `count` live rows (all of them when fewer), drawn in chunk-id order: the same live
    chunks give the same sample however the version's segments number them."""
    live = np.flatnonzero(snapshot.live)
    live = live[np.argsort(snapshot.chunk_ids[live], kind="stable")]
    return live[rng.permutation(len(live))[:count]]


def pseudo_queries(texts: dict[int, str], count: int, rng: np.random.Generator | int = SEED) -> list[PseudoQuery]:
    """Up to `count` pseudo-queries from the rows given (row -> its index text), in their order, at most one per
    row. A row gives one when some sentence of it has at least MIN_SENTENCE_WORDS content words and the rest of
    the row MIN_CONTEXT_WORDS; the query keeps a random few of that sentence's content words, in order."""
    rng = np.random.default_rng(rng)
    found: list[PseudoQuery] = []
    for row, text in texts.items():
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


# ---------------------------------------------------------------- search's rankings, sentence hidden


def hidden_sentence_candidates(
    searcher: Searcher,
    snapshot: Snapshot,
    queries: list[PseudoQuery],
    vectors: np.ndarray,
    context_vectors: np.ndarray,
    texts_of: TextsOf,
) -> list[Candidates]:
    """Each query's candidates as search gathers them for an unfiltered query of k = RANK_DEPTH, then as if the
    query's sentence were not in the index (`without_sentence`). The texts of every candidate are read in one
    batch, to find the rows holding the sentence."""
    found = [
        searcher.candidates(snapshot, query.text, vector, RANK_DEPTH, SearchFilter())
        for query, vector in zip(queries, vectors, strict=True)
    ]
    rows = np.unique(np.concatenate([c.rows for c in found] + [np.array([q.row for q in queries], dtype=np.int64)]))
    texts = dict(zip(rows.tolist(), texts_of(snapshot.chunk_ids[rows]), strict=True))
    depth = max(searcher.settings.candidates, 2 * RANK_DEPTH)  # what Searcher.candidates took of each ranker
    return [
        without_sentence(snapshot, candidates, query, texts, float(context_vector @ vector), depth)
        for candidates, query, vector, context_vector in zip(found, queries, vectors, context_vectors, strict=True)
    ]


def without_sentence(
    snapshot: Snapshot, found: Candidates, query: PseudoQuery, texts: dict[int, str], source_dense: float, depth: int
) -> Candidates:
    """Search's candidates for `query` as if its sentence were not indexed: other rows holding the whole sentence
    (overlapping chunks, copies) leave, the source row is scored on its text without it (dense: `source_dense`, its
    context's similarity; BM25: `_bm25_without_sentence`), and each ranker's list is ranked again and cut to
    `depth`. Without hiding it, a query made of the sentence's own words is an exact-match test that BM25 wins on
    any corpus. A row a ranker would only have reached once the holders left is missed: it could only rank last."""
    position = {int(row): i for i, row in enumerate(found.rows)}
    held = {row for row in position if row != query.row and query.sentence and query.sentence in texts[row]}
    source_bm25 = _bm25_without_sentence(snapshot, query)

    def score(values: np.ndarray, source: float) -> Callable[[int], float]:
        return lambda row: source if row == query.row else float(values[position[row]])

    dense, bm25 = score(found.dense, source_dense), score(found.bm25, source_bm25)
    dense_rows = _ranked([*_listed(found, found.dense_rank), query.row], held, dense, depth)
    bm25_listed = _listed(found, found.bm25_rank) + ([query.row] if source_bm25 > 0 else [])
    bm25_rows = _ranked(bm25_listed, held, bm25, depth)
    rows = np.union1d(dense_rows, bm25_rows).astype(np.int64)
    at = {int(row): i for i, row in enumerate(rows)}
    return Candidates(
        rows=rows,
        dense=np.array([dense(int(row)) for row in rows], dtype=np.float32),
        bm25=np.array([bm25(int(row)) for row in rows], dtype=np.float32),
        dense_rank={at[row]: rank for rank, row in enumerate(dense_rows)},
        bm25_rank={at[row]: rank for rank, row in enumerate(bm25_rows)},
    )


def _listed(found: Candidates, ranks: dict[int, int]) -> list[int]:
    """The rows one ranker returned, best first."""
    return [int(found.rows[position]) for position in sorted(ranks, key=ranks.__getitem__)]


def _ranked(rows: list[int], held: set[int], score: Callable[[int], float], depth: int) -> list[int]:
    kept = list(dict.fromkeys(row for row in rows if row not in held))
    return sorted(kept, key=lambda row: -score(row))[:depth]


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


def reciprocal_rank(snapshot: Snapshot, found: Candidates, scores: np.ndarray, source: int) -> float:
    """1 / rank of the source row by score among the candidates scored above -inf, duplicates folded as search
    folds them; 0 past RANK_DEPTH."""
    ranked = [i for i in fold_duplicates(snapshot, found.rows, scores) if scores[i] > -np.inf][:RANK_DEPTH]
    return next((1.0 / (rank + 1) for rank, i in enumerate(ranked) if found.rows[i] == source), 0.0)


def _only_ranked(values: np.ndarray, ranks: dict[int, int]) -> np.ndarray:
    """One ranker's scores where it returned the candidate, -inf elsewhere (the other ranker's finds)."""
    scores = np.full(len(values), -np.inf)
    for position in ranks:
        scores[position] = values[position]
    return scores


# ---------------------------------------------------------------- calibration


def calibrate(searcher: Searcher, snapshot: Snapshot, texts_of: TextsOf, seed: int = SEED) -> Calibration:
    """Choose the dense-weight shift for `snapshot` on pseudo-queries drawn from a seeded sample of its rows, under
    the searcher's settings."""
    count = searcher.settings.fusion_calibration_queries
    # one stream for the sample and the words kept: on a version of one segment without deletions these are the
    # pseudo-queries the dev-set measurements behind PENNY_FUSION_CALIBRATION_DENSE_RATIO were made with
    rng = np.random.default_rng(seed)
    rows = sample_rows(snapshot, ROWS_PER_QUERY * count, rng)
    texts = dict(zip(rows.tolist(), texts_of(snapshot.chunk_ids[rows]), strict=True))
    return calibrate_on(searcher, snapshot, pseudo_queries(texts, count, rng), texts_of)


def calibrate_on(searcher: Searcher, snapshot: Snapshot, queries: list[PseudoQuery], texts_of: TextsOf) -> Calibration:
    """Choose the shift that ranks the given queries' source rows best, if it beats the configured weights by more
    than the margin."""
    started = time.perf_counter()
    settings = searcher.settings
    configured = FusionMethod.from_settings(settings)
    measured = {
        "version": snapshot.version,
        "rows": len(snapshot),
        "changed_since": 0,
        "measured_with": measured_with(settings, snapshot.manifest),
    }
    if len(queries) < MIN_PSEUDO_QUERIES:
        reason = f"{len(queries)} pseudo-queries, fewer than {MIN_PSEUDO_QUERIES}"
        return Calibration(0.0, len(queries), 0.0, 0.0, 0.0, 0.0, {}, 0, 0.0, _since(started), reason, **measured)
    embed_started = time.perf_counter()
    embedded = searcher.embedder.embed([q.text for q in queries] + [q.context for q in queries])
    embed_seconds = time.perf_counter() - embed_started
    vectors, context_vectors = embedded[: len(queries)], embedded[len(queries) :]
    candidates = hidden_sentence_candidates(searcher, snapshot, queries, vectors, context_vectors, texts_of)

    def ranks(score: Callable[[PseudoQuery, Candidates], np.ndarray]) -> np.ndarray:
        found = zip(queries, candidates, strict=True)
        return np.array([reciprocal_rank(snapshot, c, score(q, c), q.row) for q, c in found])

    per_query = {
        shift: ranks(lambda q, c, shift=shift: fuse_scores(c, configured.shifted(shift), q.text)) for shift in SHIFTS
    }
    by_shift = {shift: float(values.mean()) for shift, values in per_query.items()}
    mrr_dense = float(ranks(lambda q, c: _only_ranked(c.dense, c.dense_rank)).mean())
    mrr_bm25 = float(ranks(lambda q, c: _only_ranked(c.bm25, c.bm25_rank)).mean())
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
        seconds=_since(started),
        reason=reason,
        **measured,
    )


def shifts_to_try(mrr_dense: float, mrr_bm25: float, settings: Settings) -> tuple[tuple[float, ...], str]:
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


def measured_with(settings: Settings, manifest: dict) -> dict:
    """The build and fusion settings a calibration of the version with `manifest` is measured under, as JSON
    stores them (a tuple comes back a list)."""
    build = manifest.get("build", {})
    found = {
        "build": {stage: build.get(stage) for stage in MEASURED_BUILD_STAGES},
        "settings": {name: getattr(settings, name) for name in MEASURED_SETTINGS},
    }
    return json.loads(json.dumps(found))


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


# ---------------------------------------------------------------- at publish


def calibrate_version(
    settings: Settings, version: int, live_chunks: np.ndarray, previous: Layout | None, texts_of: TextsOf
) -> Calibration | None:
    """Calibrate version `version` just written (its live chunk ids `live_chunks`; `previous`: the live version it
    replaces) and store the result beside it, or keep the previous version's calibration when it still holds
    (`reusable`). None when calibration is off or does not apply (reciprocal rank fusion has no weight to
    calibrate, an empty index nothing to rank)."""
    if not settings.fusion_calibration or settings.fusion != "convex" or not len(live_chunks):
        return None
    folder = version_folder(settings, version)
    manifest = read_manifest(settings, version) or {}
    calibration = reusable(settings, manifest, live_chunks, previous)
    if calibration is not None:
        log.info(
            "fusion calibration of v%d: v%d's kept, dense shift %+.1f (%d live rows changed since, of %d)",
            version,
            calibration.version,
            calibration.dense_shift,
            calibration.changed_since,
            calibration.rows,
        )
    else:
        calibration = calibrate(Searcher(settings), Snapshot(folder, settings), texts_of)
        log.info(
            "fusion calibration of v%d: dense shift %+.1f (%s); %d texts embedded in %.2fs, %.2fs in all",
            version,
            calibration.dense_shift,
            calibration.reason,
            calibration.texts_embedded,
            calibration.embed_seconds,
            calibration.seconds,
        )
    save_calibration(folder, calibration)
    return calibration


def reusable(
    settings: Settings, manifest: dict, live_chunks: np.ndarray, previous: Layout | None
) -> Calibration | None:
    """The previous version's calibration, its changed rows counted, when the new version may keep it: measured
    under the same build and fusion settings, and the live rows added or removed since the version that measured
    it fewer than PENNY_FUSION_CALIBRATION_REUSE_FRACTION of that version's rows."""
    if previous is None:
        return None
    earlier = load_calibration(version_folder(settings, previous.manifest["version"]))
    if earlier is None or earlier.measured_with != measured_with(settings, manifest):
        return None
    held = np.concatenate(previous.chunk_ids) if previous.chunk_ids else np.zeros(0, dtype=np.int64)
    changed = earlier.changed_since + len(np.setxor1d(np.setdiff1d(held, previous.deleted), live_chunks))
    if changed >= settings.fusion_calibration_reuse_fraction * earlier.rows:
        return None
    return replace(earlier, changed_since=changed)
