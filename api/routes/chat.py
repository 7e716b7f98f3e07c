"""Chat for employees: answers in persisted conversations, streamed or whole, and feedback on answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import answering
from api.conversations import Turn, add_feedback, open_turn, read_conversation, record_turn
from api.deps import CallerDep, ServicesDep
from api.errors import stream_error
from api.keys import Caller
from api.models import (
    COMMON_ERRORS,
    AnswerOut,
    ChatRequest,
    ChatResponse,
    ConversationOut,
    FeedbackRequest,
    FeedbackResponse,
    error_responses,
)
from api.services import Services
from penny import FLAGS, Answer

router = APIRouter(prefix="/v1", tags=["chat"], responses=error_responses(*COMMON_ERRORS, 404, 502, 503))


@router.post("/chat", response_model=ChatResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def chat(body: ChatRequest, caller: CallerDep, services: ServicesDep, stream: bool = False):
    """Ask a question in a conversation (created when `conversation_id` is absent).

    With `?stream=true` the answer arrives as server-sent events: `delta` events with text as it is written,
    then one `answer` event holding the whole ChatResponse (citations, path, confidence, cost)."""
    question = answering.check_question(services.settings, body.message)
    turn = await run_in_threadpool(open_turn, services.sessions, caller, body.conversation_id)
    if stream:
        items = await answering.stream(services, caller, question, turn.history, body.document_ids, body.use_cache)
        events = _chat_events(services, caller, turn, question, items)
        return StreamingResponse(events, media_type="text/event-stream")
    answer = AnswerOut.of(
        await answering.answer(services, caller, question, turn.history, body.document_ids, body.use_cache)
    )
    message_id = await run_in_threadpool(record_turn, services.sessions, caller, turn, question, answer)
    return ChatResponse(conversation_id=turn.conversation_id, message_id=message_id, answer=answer)


async def _chat_events(
    services: Services, caller: Caller, turn: Turn, question: str, items: AsyncIterator[str | Answer]
) -> AsyncIterator[str]:
    try:
        async for item in items:
            if isinstance(item, Answer):
                answer = AnswerOut.of(item)
                message_id = await run_in_threadpool(record_turn, services.sessions, caller, turn, question, answer)
                done = ChatResponse(conversation_id=turn.conversation_id, message_id=message_id, answer=answer)
                yield f"event: answer\ndata: {done.model_dump_json()}\n\n"
            elif item:
                yield f"event: delta\ndata: {json.dumps({'text': item})}\n\n"
    except Exception as exc:  # headers are gone: the error travels as an event
        yield f"event: error\ndata: {json.dumps(stream_error(exc))}\n\n"


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
async def get_conversation(conversation_id: str, caller: CallerDep, services: ServicesDep):
    """A conversation with its messages and answers, for its owner only (404 for anyone else)."""
    return await run_in_threadpool(read_conversation, services.sessions, caller, conversation_id)


@router.post("/feedback", response_model=FeedbackResponse, status_code=201)
async def feedback(body: FeedbackRequest, caller: CallerDep, services: ServicesDep):
    """Thumbs up or down, with an optional comment, on one of your answers (its `message_id`)."""
    rating = 1 if body.rating == "up" else -1
    feedback_id = await run_in_threadpool(
        add_feedback, services.sessions, caller, body.message_id, rating, body.comment
    )
    return FeedbackResponse(id=feedback_id, message_id=body.message_id, rating=body.rating)


@router.get("/flags")
async def flags(caller: CallerDep) -> dict[str, str]:
    """The vocabulary of `Answer.flags`: each flag's name and what it means (penny.FLAGS). A flag in an answer is a
    name, or `name:detail`."""
    return FLAGS
