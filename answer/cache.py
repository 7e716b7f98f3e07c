"""The answer cache in the catalogue: exact (normalised question) and semantic (question embedding), both keyed by
the caller's scope, the settings that shape answers and the live index version, so a new index version, another
group set or another threshold, answer style or LLM never sees an entry."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import TypeAdapter
from sqlalchemy import JSON, DateTime, Index, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from penny import Answer, Settings
from retrieval.analysis import analyze
from retrieval.catalogue import Base, utcnow
from retrieval.fusion import FUSION_SETTINGS

SEMANTIC_CANDIDATES = 5000  # newest entries compared by embedding; older ones still hit exactly
_SPACE = re.compile(r"\s+")
# Words BM25's short stop list keeps but a question's subject never rests on (as stemmed by `analyze`).
_FUNCTION_WORDS = frozenset(
    analyze("can could may might must shall should would do does did get i my we our me you your us one")
)
_TRAILING = re.compile(r"[\s?.!]+$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ANSWER = TypeAdapter(Answer)


class CachedAnswer(Base):
    """One answer as it was given, found again by its normalised question or its embedding, within one scope."""

    __tablename__ = "answer_cache"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_key: Mapped[str] = mapped_column(String(2000))
    scope_key: Mapped[str] = mapped_column(String(64))
    index_version: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)  # penny.Answer as JSON-ready data
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_answer_cache_lookup", "scope_key", "index_version", "question_key"),)


def normalise(question: str) -> str:
    return _TRAILING.sub("", _SPACE.sub(" ", question.strip().lower()))


# Settings that change which answer a question gets (routing, answer style, the LLM, retrieval at query time).
ANSWER_SETTINGS = (
    "router_min_gain",
    "abstain_floor",
    "passage_answer",
    "answer_sentences",
    "llm_model",
    "llm_context_tokens",
    "llm_max_tokens",
    "llm_passages",
    "external_base_url",
    "external_model",
    "followup_llm_rewrite",
    *FUSION_SETTINGS,
    "fusion_calibration",
    "candidates",
    "hnsw_ef_search",
    "embedding_model",
    "embed_backend",
)


def scope_key(groups: Sequence[str] | None, document_ids: Sequence[int], settings: Settings) -> str:
    """One key per visible set of documents, the caller's groups (None: trusted, sees all) and any document
    scope, and per value of the settings that shape answers."""
    scope = {
        "groups": None if groups is None else sorted(set(groups)),
        "documents": sorted(set(document_ids)),
        "settings": {name: getattr(settings, name) for name in ANSWER_SETTINGS},
    }
    return hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()


def same_question_terms(question: str, other: str) -> bool:
    """A guard on semantic hits: embeddings put "expenses over 500 pounds" and "over 5000 pounds" at 0.97 cosine.
    The questions must name the same numbers and differ by at most one content term added or dropped."""
    terms, other_terms = set(analyze(question)) - _FUNCTION_WORDS, set(analyze(other)) - _FUNCTION_WORDS
    same_numbers = set(_NUMBER.findall(question)) == set(_NUMBER.findall(other))  # `analyze` drops "9"
    return same_numbers and len(terms ^ other_terms) <= 1


class AnswerCache:
    def __init__(self, sessions: sessionmaker[Session], similarity: float) -> None:
        self.sessions = sessions
        self.similarity = similarity

    def exact(self, question: str, scope: str, index_version: int) -> Answer | None:
        with self.sessions() as session:
            row = session.scalars(
                select(CachedAnswer)
                .where(CachedAnswer.scope_key == scope, CachedAnswer.index_version == index_version)
                .where(CachedAnswer.question_key == normalise(question))
                .order_by(CachedAnswer.id.desc())
                .limit(1)
            ).first()
            return self._hit(session, row) if row else None

    def semantic(self, question: str, vector: np.ndarray, scope: str, index_version: int) -> Answer | None:
        with self.sessions() as session:
            rows = session.execute(
                select(CachedAnswer.id, CachedAnswer.embedding, CachedAnswer.question_key)
                .where(CachedAnswer.scope_key == scope, CachedAnswer.index_version == index_version)
                .order_by(CachedAnswer.id.desc())
                .limit(SEMANTIC_CANDIDATES)
            ).all()
            if not rows:
                return None
            matrix = np.stack([np.frombuffer(row.embedding, dtype=np.float32) for row in rows])
            similarity = matrix @ vector.astype(np.float32)
            for best in np.argsort(-similarity):
                if similarity[best] < self.similarity:
                    return None
                if same_question_terms(question, rows[best].question_key):
                    return self._hit(session, session.get(CachedAnswer, rows[best].id))
            return None

    def store(self, question: str, vector: np.ndarray, scope: str, index_version: int, answer: Answer) -> None:
        with self.sessions() as session, session.begin():
            # entries for older index versions can never hit again
            session.execute(delete(CachedAnswer).where(CachedAnswer.index_version < index_version))
            session.add(
                CachedAnswer(
                    question_key=normalise(question),
                    scope_key=scope,
                    index_version=index_version,
                    embedding=np.asarray(vector, dtype=np.float32).tobytes(),
                    answer=_ANSWER.dump_python(answer, mode="json"),
                )
            )

    @staticmethod
    def _hit(session: Session, row: CachedAnswer) -> Answer:
        session.execute(update(CachedAnswer).where(CachedAnswer.id == row.id).values(hits=CachedAnswer.hits + 1))
        session.commit()
        original = _ANSWER.validate_python(row.answer)
        return replace(original, flags=[*original.flags, f"cached_from:{original.path}"])
