"""Extractive answers: the sentences of the retrieved passages that answer the question, picked without an LLM.

Each sentence is scored by cosine similarity to the question plus the share of the question's (stemmed, stop-word
free) terms it contains; both matter: similarity finds paraphrases, term overlap finds the exact figure's sentence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from penny import Passage
from retrieval.analysis import analyze
from retrieval.embedder import Embedder

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote; lines and list items
# are sentences of their own (handbooks are full of bullet points and table rows).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_MIN_CHARS = 12
TERM_WEIGHT = 0.5  # term overlap counts half as much as cosine similarity


@dataclass(frozen=True)
class ScoredSentence:
    passage_index: int
    position: int
    text: str
    score: float


def split_sentences(text: str) -> list[str]:
    sentences = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip(" |\t")
        if not line:
            continue
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return [sentence for sentence in sentences if len(sentence) >= _MIN_CHARS] or [text.strip()]


def score_sentences(
    question: str, question_vector: np.ndarray | None, passages: list[Passage], embedder: Embedder
) -> tuple[list[ScoredSentence], np.ndarray]:
    """Every sentence of `passages`, scored, and the question's vector: one batch of embeddings for all of them
    (the question joins the batch when its vector is not known yet)."""
    located = [
        (index, position, sentence)
        for index, passage in enumerate(passages)
        for position, sentence in enumerate(split_sentences(passage.chunk.text))
    ]
    texts = [sentence for _, _, sentence in located]
    if question_vector is None:
        vectors = embedder.embed([question, *texts])
        question_vector, vectors = vectors[0], vectors[1:]
    else:
        vectors = embedder.embed(texts)
    similarity = vectors @ question_vector if len(texts) else np.zeros(0, dtype=np.float32)
    terms = set(analyze(question))
    sentence_terms = [set(analyze(sentence)) for sentence in texts]
    weight = _term_weights(terms, sentence_terms)
    total = sum(weight.values())
    scored = []
    for (index, position, sentence), cosine, found in zip(located, similarity, sentence_terms, strict=True):
        overlap = sum(weight[term] for term in terms & found) / total if total else 0.0
        scored.append(ScoredSentence(index, position, sentence, float(cosine) + TERM_WEIGHT * overlap))
    return scored, question_vector


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
