"""Answering for the API: check the question, plan its answer in the ordinary thread pool, and hand the LLM gate
only the generation.

Answerer.plan does the cache lookup, retrieval, the passage answer and the routing decision: cache, passage and
abstain answers finish there and never queue. Only a plan that needs the LLM goes to the gate's single worker,
which runs Answerer.finish on it (generation only: retrieval is not redone, and the plan's cost is kept).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import AsyncIterator, Sequence

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.keys import Caller
from api.services import Services
from penny import Answer, Settings

History = Sequence[tuple[str, str]]


def visible_text(text: str) -> str:
    """The text without format characters (zero-width spaces and joiners, BOMs) and with control characters
    (NUL and the like) as spaces: what a reader sees, and what the tokenizers and the catalogue can hold."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        kept.append(" " if category == "Cc" and char not in "\n\t" else char)
    return "".join(kept)


def check_question(settings: Settings, question: str) -> str:
    question = visible_text(question).strip()
    if not question:
        raise ApiError(400, "empty_question", "the question is empty: ask something")
    if len(question) > settings.max_question_chars:
        raise ApiError(
            400,
            "question_too_long",
            f"the question has {len(question):,} characters; the limit is {settings.max_question_chars:,} "
            "(PENNY_MAX_QUESTION_CHARS)",
        )
    return question


async def answer(
    services: Services,
    caller: Caller,
    question: str,
    history: History = (),
    document_ids: Sequence[int] = (),
    use_cache: bool = True,
) -> Answer:
    started = time.monotonic()
    answerer = services.answerer

    def plan():
        return answerer.plan(question, list(history), list(caller.groups), "routed", tuple(document_ids), use_cache)

    def finish(planned) -> Answer:
        return [item for item in answerer.finish(planned) if isinstance(item, Answer)][-1]

    planned = await run_in_threadpool(plan)
    result = await services.gate.run(finish, planned) if planned.needs_llm else finish(planned)
    services.metrics.observe_answer(result, time.monotonic() - started)
    return result


async def stream(
    services: Services,
    caller: Caller,
    question: str,
    history: History = (),
    document_ids: Sequence[int] = (),
    use_cache: bool = True,
) -> AsyncIterator[str | Answer]:
    """Text deltas, then the final Answer. The gate is entered (or refused with 503) before the first item."""
    started = time.monotonic()
    answerer = services.answerer
    planned = await run_in_threadpool(
        answerer.plan, question, list(history), list(caller.groups), "routed", tuple(document_ids), use_cache
    )
    if planned.needs_llm:
        source = services.gate.stream(lambda: answerer.finish(planned))
    else:
        source = _replay(list(answerer.finish(planned)))

    async def observed() -> AsyncIterator[str | Answer]:
        async for item in source:
            if isinstance(item, Answer):
                services.metrics.observe_answer(item, time.monotonic() - started)
            yield item

    return observed()


async def _replay(items: list[str | Answer]) -> AsyncIterator[str | Answer]:
    for item in items:
        yield item
