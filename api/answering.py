"""Answering for the API: check the question, then answer off the LLM when the router can, and through the LLM
gate only when it cannot.

Every question first runs in the ordinary thread pool with the LLM forbidden: cache, passage and abstain
answers finish there and never queue. Only when the router says the LLM is needed does the question go to the
gate's single worker (retrieval runs again there, ~10 ms against seconds of generation).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import AsyncIterator, Sequence

from starlette.concurrency import run_in_threadpool

from answer import NeedsLlm
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

    def run(allow_llm: bool) -> Answer:
        return answerer.answer(
            question,
            history=list(history),
            groups=list(caller.groups),
            strategy="routed",
            document_ids=tuple(document_ids),
            use_cache=use_cache,
            allow_llm=allow_llm,
        )

    try:
        result = await run_in_threadpool(run, False)
    except NeedsLlm:
        result = await services.gate.run(run, True)
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
    groups = list(caller.groups)

    def run(allow_llm: bool):
        return answerer.stream(
            question, list(history), groups, "routed", tuple(document_ids), use_cache, allow_llm=allow_llm
        )

    def off_llm() -> list[str | Answer]:
        return list(run(False))

    try:
        items = await run_in_threadpool(off_llm)
    except NeedsLlm:
        items = None
    if items is not None:
        source = _replay(items)
    else:
        source = services.gate.stream(lambda: run(True))

    async def observed() -> AsyncIterator[str | Answer]:
        async for item in source:
            if isinstance(item, Answer):
                services.metrics.observe_answer(item, time.monotonic() - started)
            yield item

    return observed()


async def _replay(items: list[str | Answer]) -> AsyncIterator[str | Answer]:
    for item in items:
        yield item
