"""The larger tier: any OpenAI-compatible chat-completions endpoint, used when configured and the local model is
not enough, through the `openai` client. Streams, and asks the server to report token usage in the last event."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import httpx
import openai
from openai.types.chat import ChatCompletionChunk

from answer.llm import Generation
from penny import PennyError, Settings

log = logging.getLogger("penny.answer.external")
# What callers are told: the endpoint's URL and its reply (which can name accounts or echo keys) stay out of it.
FAILED = "the external model failed to answer; try again later"


class ExternalUnavailable(PennyError):
    code = "external_unavailable"


def is_configured(settings: Settings) -> bool:
    return bool(settings.external_base_url and settings.external_model)


def stream_external(
    settings: Settings, messages: list[dict[str, str]], max_tokens: int, generation: Generation
) -> Iterator[str]:
    """Yield text deltas from the endpoint, filling `generation` with the usage the server reports."""
    client = openai.OpenAI(
        base_url=settings.external_base_url,
        api_key=settings.external_api_key or "none",  # the SDK insists on one; endpoints without keys ignore it
        timeout=settings.external_timeout_seconds,
        max_retries=0,  # the router escalates once; a retry would double the wait on a failing endpoint
    )
    started = time.perf_counter()
    try:
        with client.chat.completions.create(
            model=settings.external_model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        ) as chunks:
            yield from _deltas(chunks, generation)
    except openai.APIStatusError as exc:
        log.warning("the external model endpoint answered HTTP %d", exc.status_code)
        raise ExternalUnavailable(f"{FAILED} (its endpoint answered HTTP {exc.status_code})") from exc
    except (openai.APITimeoutError, httpx.TimeoutException) as exc:  # the SDK passes httpx's own mid-stream
        generation.timed_out = True
        log.warning("the external model endpoint timed out after %s s", settings.external_timeout_seconds)
        raise ExternalUnavailable(f"{FAILED} (its endpoint timed out)") from exc
    except (openai.APIConnectionError, httpx.HTTPError) as exc:  # its text names the URL
        log.warning("the external model endpoint could not be reached: %s", type(exc.__cause__ or exc).__name__)
        raise ExternalUnavailable(f"{FAILED} (its endpoint could not be reached)") from exc
    finally:
        generation.wall_seconds = time.perf_counter() - started


def _deltas(chunks: Iterable[ChatCompletionChunk], generation: Generation) -> Iterator[str]:
    try:
        for chunk in chunks:
            if chunk.usage:
                generation.prompt_tokens = chunk.usage.prompt_tokens
                generation.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices or []:
                text = (choice.delta.content if choice.delta else None) or ""
                if text:
                    generation.text += text
                    yield text
    except (openai.APIStatusError, openai.APIConnectionError):
        raise
    except (ValueError, TypeError, AttributeError, openai.APIError) as exc:  # not an OpenAI-shaped stream
        log.warning("the external model endpoint sent an event that is not a chat completion chunk")
        raise ExternalUnavailable(f"{FAILED} (its endpoint sent a malformed reply)") from exc
