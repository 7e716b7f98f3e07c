"""Extractive answers: the sentences of the retrieved passages that answer the question, picked without an LLM.

Each sentence is scored by cosine similarity to the question plus the share of the question's (stemmed, stop-word
free) terms it contains; both matter: similarity finds paraphrases, term overlap finds the exact figure's sentence.
A sentence of a lower-ranked passage gives up a little: retrieval judged the whole passage, with its heading, and a
sentence that only sounds like the question should not outweigh that.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from penny import Passage
from retrieval.analysis import analyze
from retrieval.embedder import Embedder
from retrieval.sentences import sentences

TERM_WEIGHT = 0.5  # term overlap counts half as much as cosine similarity
# Sentences embedded per answer. 5 rather than 8 (seed 13, passages strategy, 2026-12-02): F1 sample 0.366 -> 0.375,
# tatqa-dev 0.204 -> 0.204, ocp slice 0.348 -> 0.346 (one question of 300 less correct), p50 22 -> 18 ms.
SHORTLIST = 5
# Score given up per rank of the sentence's passage. Passages strategy, seed 13, F1 / accuracy at 0 -> 0.05 -> 0.1
# -> 0.2: sample (91) 0.356/0.385 -> 0.364/0.396 -> 0.361/0.385 -> 0.345/0.363; tatqa-dev (300) 0.293/0.677 ->
# 0.294/0.677 -> 0.295/0.677 -> 0.287/0.660; ocp slice (300) 0.362/0.243 -> 0.372/0.260 -> 0.372/0.260 -> 0.373/0.270;
# msmarco-sample (300, never used to shape answers before) 0.346/0.720 -> 0.359/0.737 -> 0.355/0.737 -> 0.360/0.750.
RANK_PENALTY = 0.05
SENTENCE_CACHE = 50_000  # sentence vectors kept per process (~77 MB at 384 dimensions)
_sentence_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ScoredSentence:
    passage_index: int
    position: int
    text: str
    score: float
    start: int = 0
    end: int = 0
    line: int = 0


StoredVectors = Callable[[list[str]], dict[str, np.ndarray]]


def score_sentences(
    question: str,
    question_vector: np.ndarray | None,
    passages: list[Passage],
    embedder: Embedder,
    stored: StoredVectors = lambda texts: {},
) -> tuple[list[ScoredSentence], np.ndarray, int]:
    """The sentences of `passages` most likely to answer, scored, and the question's vector.

    Term overlap shortlists `SHORTLIST` sentences, and only those are scored by cosine: with the vectors ingestion
    stored for them (`stored`, retrieval/sentence_vectors.py), else embedded in one batch (with the question when its
    vector is not known yet). Embedding every sentence of three passages cost several times the search itself."""
    located = [
        (index, position, sentence)
        for index, passage in enumerate(passages)
        for position, sentence in enumerate(sentences(passage.chunk.text))
    ]
    terms = set(analyze(question))
    sentence_terms = [set(analyze(sentence.text)) for _, _, sentence in located]
    weight = _term_weights(terms, sentence_terms)
    total = sum(weight.values())
    overlap = [sum(weight[term] for term in terms & found) / total if total else 0.0 for found in sentence_terms]
    shortlist = sorted(range(len(located)), key=lambda i: -overlap[i])[:SHORTLIST]  # stable: earlier passages win ties
    texts = [located[i][2].text for i in shortlist]
    vectors, question_vector, embed_calls = _embed_cached(embedder, texts, question, question_vector, stored)
    similarity = vectors @ question_vector if texts else np.zeros(0, dtype=np.float32)
    scored = []
    for i, cosine in zip(shortlist, similarity, strict=True):
        index, position, sentence = located[i]
        score = float(cosine) + TERM_WEIGHT * overlap[i] - RANK_PENALTY * index
        scored.append(
            ScoredSentence(index, position, sentence.text, score, sentence.start, sentence.end, sentence.line)
        )
    return scored, question_vector, embed_calls


def _embed_cached(
    embedder: Embedder,
    texts: list[str],
    question: str,
    question_vector: np.ndarray | None,
    stored: StoredVectors,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Vectors of `texts` (from the process's sentence cache, else as stored at ingestion, where possible) and of
    the question; one embedding call for whatever is missing. Popular documents' sentences are read from the
    catalogue, or embedded when ingestion stored none, once per process."""
    with _cache_lock:
        known = {text: _sentence_vectors.get((embedder.cache_key, text)) for text in dict.fromkeys(texts)}
    unknown = [text for text, vector in known.items() if vector is None]
    if unknown:
        found = stored(unknown)
        known.update(found)
        _remember(embedder.cache_key, found)
    missing = [text for text, vector in known.items() if vector is None]
    batch = missing if question_vector is not None else [question, *missing]
    embed_calls = 0
    if batch:
        fresh = embedder.embed(batch)
        embed_calls = 1
        if question_vector is None:
            question_vector, fresh = fresh[0], fresh[1:]
        embedded = dict(zip(missing, fresh, strict=True))
        known.update(embedded)
        _remember(embedder.cache_key, embedded)
    if not texts:
        return np.zeros((0, len(question_vector)), dtype=np.float32), question_vector, embed_calls
    return np.stack([known[text] for text in texts]), question_vector, embed_calls


def _remember(cache_key: str, vectors: dict[str, np.ndarray]) -> None:
    with _cache_lock:
        for text, vector in vectors.items():
            _sentence_vectors[(cache_key, text)] = vector
        while len(_sentence_vectors) > SENTENCE_CACHE:
            _sentence_vectors.popitem(last=False)


def _term_weights(terms: set[str], sentence_terms: list[set[str]]) -> dict[str, float]:
    """Inverse sentence frequency among the candidates: a question term that few candidate sentences share
    ("part-time" among many "annual leave" sentences) says more about which sentence answers."""
    count = len(sentence_terms)
    return {term: math.log(1 + count / (1 + sum(term in found for found in sentence_terms))) for term in terms}


def pick_sentences(scored: list[ScoredSentence], limit: int, margin: float = 0.15) -> list[ScoredSentence]:
    """The best sentence, plus up to `limit - 1` more from the same passage scoring within `margin` of it,
    returned in reading order so the answer reads as the document does."""
    if not scored:
        return []
    ranked = sorted(scored, key=lambda item: -item.score)
    best = ranked[0]
    chosen = [best] + [
        item for item in ranked[1:] if item.passage_index == best.passage_index and best.score - item.score <= margin
    ][: limit - 1]
    return sorted(chosen, key=lambda item: item.position)
