"""Answering for the API: check the question, plan its answer in the ordinary thread pool, and hand the LLM gate
only the generation.

Answerer.plan does the cache lookup, retrieval, the passage answer and the routing decision: cache, passage and
abstain answers finish there and never queue. Only a plan that needs the LLM goes to the gate's single worker,
which runs Answerer.finish on it (generation only: retrieval is not redone, and the plan's cost is kept). The work
handed to the gate is `generate` or `generate_stream` with the settings and the plan, nothing bound to this
process, because under `penny serve --replicas` the gate sends it to the LLM's own deployment (api/serve.py).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.keys import Caller
from api.services import Services
from penny import Answer, Settings

if TYPE_CHECKING:
    from answer import Plan

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

    planned = await run_in_threadpool(plan)
    if planned.needs_llm:
        result = await services.gate.run(generate, services.settings, planned)
    else:
        result = planned.answer
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
        source = await services.gate.stream(partial(generate_stream, services.settings, planned))
    else:
        source = _replay(list(answerer.finish(planned)))

    async def observed() -> AsyncIterator[str | Answer]:
        async for item in source:
            if isinstance(item, Answer):
                services.metrics.observe_answer(item, time.monotonic() - started)
            yield item

    return observed()


def generate_stream(settings: Settings, plan: Plan) -> Iterator[str | Answer]:
    """The LLM's text deltas for `plan`, then its Answer, from the Answerer of the process this runs in."""
    from answer import get_answerer

    return get_answerer(settings).finish(plan)


def generate(settings: Settings, plan: Plan) -> Answer:
    """The LLM's Answer for `plan`, from the Answerer of the process this runs in."""
    return [item for item in generate_stream(settings, plan) if isinstance(item, Answer)][-1]


async def _replay(items: list[str | Answer]) -> AsyncIterator[str | Answer]:
    for item in items:
        yield item
