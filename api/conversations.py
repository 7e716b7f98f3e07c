"""Conversations, messages and feedback in the catalogue, each visible to its owner only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError, not_found
from api.keys import Caller
from api.models import AnswerOut, ConversationOut, MessageOut
from api.tables import Conversation, Feedback, Message
from retrieval.catalogue import Document, utcnow

HISTORY_TURNS = 6  # the last messages handed to the answerer for follow-up questions
HIDDEN = "[hidden: this answer cites documents your key may not read]"


def _owned(session: Session, conversation_id: str, caller: Caller) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.owner != caller.user:  # another user's is as good as absent
        raise not_found("conversation_not_found", f"no conversation {conversation_id} of yours")
    return conversation


@dataclass(frozen=True)
class Turn:
    """A question about to be answered in a conversation (a new one when `is_new`), with the history before it."""

    conversation_id: str
    is_new: bool
    history: list[tuple[str, str]]


def open_turn(sessions: sessionmaker[Session], caller: Caller, conversation_id: str | None) -> Turn:
    """Check the caller owns the conversation and read its recent history; writes nothing. Answers this key may
    not read are left out: what reaches the follow-up rewrite, the LLM and the cache key is what the key could
    read in the conversation itself."""
    if conversation_id is None:
        return Turn(str(uuid.uuid4()), True, [])
    with sessions() as session:
        conversation = _owned(session, conversation_id, caller)
        hidden = _hidden_answers(session, conversation.messages, caller)
        visible = [(m.role, m.content) for m in conversation.messages if m.id not in hidden]
        return Turn(conversation_id, False, visible[-HISTORY_TURNS:])


def record_turn(sessions: sessionmaker[Session], caller: Caller, turn: Turn, question: str, answer: AnswerOut) -> int:
    """Store the question and its answer (and the conversation when new) in one transaction; returns the answer's
    message id. A question that got no answer (LLM busy, an error) leaves no trace."""
    with sessions.begin() as session:
        if turn.is_new:
            session.add(Conversation(id=turn.conversation_id, owner=caller.user, created_at=utcnow()))
        now = utcnow()
        session.add(Message(conversation_id=turn.conversation_id, role="user", content=question, created_at=now))
        message = Message(
            conversation_id=turn.conversation_id,
            role="assistant",
            content=answer.text,
            answer=answer.model_dump(mode="json"),
            created_at=now,
        )
        session.add(message)
        session.flush()
        return message.id


def read_conversation(sessions: sessionmaker[Session], caller: Caller, conversation_id: str) -> ConversationOut:
    """The conversation for its owner. Answers resting on documents the key may no longer read are hidden: keys of
    one user can have different groups, and a document's groups can change after it was cited."""
    with sessions() as session:
        conversation = _owned(session, conversation_id, caller)
        hidden = _hidden_answers(session, conversation.messages, caller)
        messages = []
        for message in conversation.messages:
            if message.id in hidden:
                answer, content = None, HIDDEN
            else:
                answer, content = _answer_of(message), message.content
            messages.append(
                MessageOut(
                    id=message.id, role=message.role, content=content, answer=answer, created_at=message.created_at
                )
            )
        return ConversationOut(
            id=conversation.id, owner=conversation.owner, created_at=conversation.created_at, messages=messages
        )


def _answer_of(message: Message) -> AnswerOut | None:
    return AnswerOut.model_validate(message.answer) if message.answer else None


def _hidden_answers(session: Session, messages: list[Message], caller: Caller) -> set[int]:
    """Ids of the answers made from, citing or naming as closest a document the caller may not read."""
    answers = {m.id: answer for m in messages if (answer := _answer_of(m)) is not None}
    resting_on = {
        m_id: {c.document_id for c in [*a.citations, *a.related]} | set(a.source_documents)
        for m_id, a in answers.items()
    }
    readable = _readable_documents(session, set().union(*resting_on.values()), caller)
    return {m_id for m_id, documents in resting_on.items() if not documents <= readable}


def _readable_documents(session: Session, document_ids: set[int], caller: Caller) -> set[int]:
    if not document_ids:
        return set()
    rows = session.execute(select(Document.id, Document.groups).where(Document.id.in_(document_ids)))
    return {doc_id for doc_id, groups in rows if set(groups) & set(caller.groups)}


def add_feedback(sessions: sessionmaker[Session], caller: Caller, message_id: int, rating: int, comment: str) -> int:
    with sessions.begin() as session:
        message = session.get(Message, message_id)
        if message is None or session.get(Conversation, message.conversation_id).owner != caller.user:
            raise not_found("message_not_found", f"no message {message_id} in your conversations")
        if message.role != "assistant":
            raise ApiError(400, "not_an_answer", f"message {message_id} is a question; rate an answer's message id")
        feedback = Feedback(
            message_id=message_id, user=caller.user, rating=rating, comment=comment, created_at=utcnow()
        )
        session.add(feedback)
        session.flush()
        return feedback.id
