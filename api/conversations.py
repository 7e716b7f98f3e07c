"""Conversations, messages and feedback in the catalogue, each visible to its owner only."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError, not_found
from api.keys import Caller
from api.models import AnswerOut, ConversationOut, MessageOut
from retrieval.catalogue import Conversation, Document, Feedback, Message, utcnow

HISTORY_TURNS = 6  # the last messages handed to the answerer for follow-up questions
HIDDEN = "[hidden: this answer cites documents your key may not read]"


def _owned(session: Session, conversation_id: str, caller: Caller) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.owner != caller.user:  # another user's is as good as absent
        raise not_found("conversation_not_found", f"no conversation {conversation_id} of yours")
    return conversation


def start_turn(sessions: sessionmaker[Session], caller: Caller, conversation_id: str | None, question: str):
    """Store the user's message (creating the conversation when absent); returns (id, history before it)."""
    with sessions.begin() as session:
        if conversation_id is None:
            conversation = Conversation(id=str(uuid.uuid4()), owner=caller.user, created_at=utcnow())
            session.add(conversation)
            history: list[tuple[str, str]] = []
        else:
            conversation = _owned(session, conversation_id, caller)
            recent = conversation.messages[-HISTORY_TURNS:]
            history = [(message.role, message.content) for message in recent]
        session.add(Message(conversation_id=conversation.id, role="user", content=question, created_at=utcnow()))
        return conversation.id, history


def finish_turn(sessions: sessionmaker[Session], conversation_id: str, answer: AnswerOut) -> int:
    with sessions.begin() as session:
        message = Message(
            conversation_id=conversation_id,
            role="assistant",
            content=answer.text,
            answer_json=answer.model_dump_json(),
            created_at=utcnow(),
        )
        session.add(message)
        session.flush()
        return message.id


def read_conversation(sessions: sessionmaker[Session], caller: Caller, conversation_id: str) -> ConversationOut:
    """The conversation for its owner. Answers citing documents the key may no longer read are hidden: keys of
    one user can have different groups, and a document's groups can change after it was cited."""
    with sessions() as session:
        conversation = _owned(session, conversation_id, caller)
        answers = {m.id: AnswerOut.model_validate_json(m.answer_json) for m in conversation.messages if m.answer_json}
        cited = {c.document_id for answer in answers.values() for c in answer.citations}
        readable = _readable_documents(session, cited, caller)
        messages = []
        for message in conversation.messages:
            answer = answers.get(message.id)
            content = message.content
            if answer is not None and any(c.document_id not in readable for c in answer.citations):
                answer, content = None, HIDDEN
            messages.append(
                MessageOut(id=message.id, role=message.role, content=content, answer=answer,
                           created_at=message.created_at)
            )  # fmt: skip
        return ConversationOut(
            id=conversation.id, owner=conversation.owner, created_at=conversation.created_at, messages=messages
        )


def _readable_documents(session: Session, document_ids: set[int], caller: Caller) -> set[int]:
    if not document_ids:
        return set()
    rows = session.execute(select(Document.id, Document.groups_json).where(Document.id.in_(document_ids)))
    return {doc_id for doc_id, groups in rows if set(json.loads(groups)) & set(caller.groups)}


def add_feedback(sessions: sessionmaker[Session], caller: Caller, message_id: int, rating: int, comment: str) -> int:
    with sessions.begin() as session:
        message = session.get(Message, message_id)
        if message is None or session.get(Conversation, message.conversation_id).owner != caller.user:
            raise not_found("message_not_found", f"no message {message_id} in your conversations")
        if message.role != "assistant":
            raise ApiError(400, "not_an_answer", f"message {message_id} is a question; rate an answer's message id")
        feedback = Feedback(message_id=message_id, user=caller.user, rating=rating, comment=comment,
                            created_at=utcnow())  # fmt: skip
        session.add(feedback)
        session.flush()
        return feedback.id
