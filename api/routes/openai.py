"""`POST /v1/chat/completions` and `GET /v1/models`, shaped like OpenAI's so its client and existing chat
front-ends work unchanged (such front-ends list the models before their first question).

The last user message is the question and the messages before it the conversation; `model` is echoed back.
Citations, path, confidence and cost travel in an extra top-level field, `penny`, which such clients ignore.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api import answering
from api.deps import CallerDep, ServicesDep
from api.errors import ApiError, not_found, stream_error
from api.models import COMMON_ERRORS, AnswerOut, CompletionRequest, ModelList, ModelOut, error_responses
from penny import Answer

router = APIRouter(prefix="/v1", tags=["openai"], responses=error_responses(*COMMON_ERRORS, 404, 502, 503))
MODEL = "penny"  # the one model: the router picks cache, passages, LLM or abstain per question
STARTED = int(time.time())


@router.get("/models")
def list_models(caller: CallerDep) -> ModelList:
    """The models a chat completion may name: just `penny`."""
    return ModelList(data=[ModelOut(id=MODEL, created=STARTED)])


@router.get("/models/{model}")
def get_model(model: str, caller: CallerDep) -> ModelOut:
    if model != MODEL:
        raise not_found("model_not_found", f"no model {model!r}; the one model is {MODEL!r}")
    return ModelOut(id=MODEL, created=STARTED)


@router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(body: CompletionRequest, caller: CallerDep, services: ServicesDep):
    """An OpenAI-compatible chat completion, whole or (`stream: true`) as server-sent events."""
    question, history = _split(body)
    question = answering.check_question(services.settings, question)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        items = await answering.stream(services, caller, question, history)
        return StreamingResponse(_chunks(items, completion_id, created, body.model), media_type="text/event-stream")
    answer = await answering.answer(services, caller, question, history)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
        "usage": _usage(answer),
        "penny": AnswerOut.of(answer).model_dump(),
    }


def _split(body: CompletionRequest) -> tuple[str, list[tuple[str, str]]]:
    turns = [(m.role, m.text()) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "no_question", "the last message must be the user's question (role `user`)")
    return turns[-1][1], turns[:-1]


def _usage(answer: Answer) -> dict[str, int]:
    prompt, completion = answer.cost.llm_prompt_tokens, answer.cost.llm_completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _chunks(
    items: AsyncIterator[str | Answer], completion_id: str, created: int, model: str
) -> AsyncIterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for item in items:
            if isinstance(item, Answer):
                yield chunk({}, "stop", usage=_usage(item), penny=AnswerOut.of(item).model_dump())
            elif item:
                yield chunk({"content": item})
    except Exception as exc:  # the status line is sent: OpenAI clients raise on a chunk holding `error`
        yield f"data: {json.dumps(stream_error(exc))}\n\n"
    yield "data: [DONE]\n\n"
