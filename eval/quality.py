"""How good one answer is against the reference answers, and whether it counts as correct.

Tokens are eval.metrics.answer_tokens (lower-cased words without English stop words, as sets), so token F1 and
answer-token recall agree on what a token is. Every score is the best over the reference answers.

"Correct" (the denominator of cost per correct answer): an answerable question answered (not abstained) with
answer-token recall >= CORRECT_RECALL; an unanswerable question abstained on.

"F1 beyond the question" is token F1 with the question's own tokens left out of both sides: what the answer says
that the asker did not. Reference answers written to restate the question reward an answer for echoing it; on the
OpenShift slice the question alone, given as its answer, scores a token F1 of 0.373, more than passage answers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.metrics import answer_token_recall, answer_tokens
from retrieval.embedder import Embedder

CORRECT_RECALL = 0.5


def token_f1(prediction: str, reference: str, ignored: frozenset[str] = frozenset()) -> float:
    """Harmonic mean of token precision and recall between two texts, without the `ignored` tokens (0 when either
    has no tokens left)."""
    predicted, wanted = answer_tokens(prediction) - ignored, answer_tokens(reference) - ignored
    shared = len(predicted & wanted)
    if not shared:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def answer_f1(prediction: str, references: Sequence[str], question: str | None = None) -> float:
    """Best token F1 over the references; with `question`, F1 beyond the question (the module docstring)."""
    ignored = frozenset(answer_tokens(question)) if question else frozenset()
    return max((token_f1(prediction, reference, ignored) for reference in references), default=0.0)


def answer_recall(prediction: str, references: Sequence[str]) -> float:
    """Best share of a reference answer's tokens that the prediction contains."""
    return answer_token_recall([prediction], references)


def embedding_similarity(embedder: Embedder, prediction: str, references: Sequence[str]) -> float:
    """Best cosine similarity between the prediction and a reference, with the index's own embedding model."""
    if not references or not prediction.strip():
        return 0.0
    vectors = embedder.embed([prediction, *references])
    return float(np.max(vectors[1:] @ vectors[0]))


@dataclass(frozen=True)
class Grade:
    answer_f1: float
    answer_recall: float
    similarity: float
    correct: bool
    f1_beyond_question: float = 0.0


def grade(
    embedder: Embedder,
    question: str,
    prediction: str,
    references: Sequence[str],
    abstained: bool,
    unanswerable: bool,
) -> Grade:
    """Score one answer to `question`. An abstention scores zero against reference answers; it is correct only when
    the question is unanswerable. Unanswerable questions have no reference answers, so their scores are zero too."""
    if abstained or unanswerable or not references:
        return Grade(0.0, 0.0, 0.0, correct=abstained and unanswerable)
    recall = answer_recall(prediction, references)
    return Grade(
        answer_f1=answer_f1(prediction, references),
        f1_beyond_question=answer_f1(prediction, references, question),
        answer_recall=recall,
        similarity=embedding_similarity(embedder, prediction, references),
        correct=recall >= CORRECT_RECALL,
    )
