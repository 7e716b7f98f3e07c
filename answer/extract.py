"""Extractive answers: the sentences of the retrieved passages that answer the question, picked without an LLM.

Each sentence is scored by cosine similarity to the question plus the share of the question's (stemmed, stop-word
free) terms it contains; both matter: similarity finds paraphrases, term overlap finds the exact figure's sentence.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from answer.layout import find_tables, labelled_row, split_lines
from penny import Passage
from retrieval.analysis import analyze
from retrieval.embedder import Embedder

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote; lines and list items
# are sentences of their own (handbooks are full of bullet points and table rows).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_MIN_CHARS = 12
TERM_WEIGHT = 0.5  # term overlap counts half as much as cosine similarity
# Sentences embedded per answer. 5 rather than 8 (seed 13, passages strategy, 2026-12-02): F1 sample 0.366 -> 0.375,
# tatqa-dev 0.204 -> 0.204, ocp slice 0.348 -> 0.346 (one question of 300 less correct), p50 22 -> 18 ms.
SHORTLIST = 5
SENTENCE_CACHE = 50_000  # sentence vectors kept per process (~77 MB at 384 dimensions)
_sentence_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Sentence:
    """A scoring unit of a passage: a sentence of a line, a list item, or a table row labelled by its header."""

    text: str  # as scored and shown
    start: int  # [start, end) in the passage text
    end: int
    line: int  # index of its line in layout.split_lines(passage text)


@dataclass(frozen=True)
class ScoredSentence:
    passage_index: int
    position: int
    text: str
    score: float
    start: int = 0
    end: int = 0
    line: int = 0


def sentences(text: str) -> list[Sentence]:
    """The passage's sentences with their offsets. A table's header row is no sentence (a bare header answers
    nothing); its data rows are, labelled with the header's cells, since a bare row ("3-5 | 26") means nothing."""
    lines = split_lines(text)
    row_of = {row: table for table in find_tables(lines) for row in (*table.header, *table.rows)}
    found: list[Sentence] = []
    for index, line in enumerate(lines):
        table = row_of.get(index)
        if table is not None:
            if index in table.rows:
                found.append(Sentence(labelled_row(lines, table, index), line.start, line.end, index))
            continue
        body = text[line.body_start : line.end].strip(" |\t")
        offset = line.body_start + text[line.body_start : line.end].index(body) if body else line.body_start
        cursor = 0
        for part in _SENTENCE_END.split(body):
            at = body.index(part, cursor)
            cursor = at + len(part)
            if part.strip():
                found.append(Sentence(part.strip(), offset + at, offset + at + len(part.rstrip()), index))
    kept = [sentence for sentence in found if len(sentence.text) >= _MIN_CHARS]
    if kept:
        return kept
    stripped = text.strip()
    start = text.index(stripped) if stripped else 0
    return [Sentence(stripped, start, start + len(stripped), 0)]


def split_sentences(text: str) -> list[str]:
    return [sentence.text for sentence in sentences(text)]


def score_sentences(
    question: str, question_vector: np.ndarray | None, passages: list[Passage], embedder: Embedder
) -> tuple[list[ScoredSentence], np.ndarray, int]:
    """The sentences of `passages` most likely to answer, scored, and the question's vector.

    Term overlap shortlists `SHORTLIST` sentences and only those are embedded, in one batch (with the question when
    its vector is not known yet): embedding every sentence of three passages cost several times the search itself."""
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
    vectors, question_vector, embed_calls = _embed_cached(embedder, texts, question, question_vector)
    similarity = vectors @ question_vector if texts else np.zeros(0, dtype=np.float32)
    scored = []
    for i, cosine in zip(shortlist, similarity, strict=True):
        index, position, sentence = located[i]
        score = float(cosine) + TERM_WEIGHT * overlap[i]
        scored.append(
            ScoredSentence(index, position, sentence.text, score, sentence.start, sentence.end, sentence.line)
        )
    return scored, question_vector, embed_calls


def _embed_cached(
    embedder: Embedder, texts: list[str], question: str, question_vector: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Vectors of `texts` (from the process's sentence cache where possible) and of the question; one embedding
    call for whatever is missing. Popular documents' sentences are embedded once per process."""
    with _cache_lock:
        known = {text: _sentence_vectors.get((embedder.cache_key, text)) for text in dict.fromkeys(texts)}
    missing = [text for text, vector in known.items() if vector is None]
    batch = missing if question_vector is not None else [question, *missing]
    embed_calls = 0
    if batch:
        fresh = embedder.embed(batch)
        embed_calls = 1
        if question_vector is None:
            question_vector, fresh = fresh[0], fresh[1:]
        known.update(zip(missing, fresh, strict=True))
        with _cache_lock:
            for text, vector in zip(missing, fresh, strict=True):
                _sentence_vectors[(embedder.cache_key, text)] = vector
            while len(_sentence_vectors) > SENTENCE_CACHE:
                _sentence_vectors.popitem(last=False)
    if not texts:
        return np.zeros((0, len(question_vector)), dtype=np.float32), question_vector, embed_calls
    return np.stack([known[text] for text in texts]), question_vector, embed_calls


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
