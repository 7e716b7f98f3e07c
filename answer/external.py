"""The larger tier: any OpenAI-compatible chat-completions endpoint, used when configured and the local model is
not enough. Streams with server-sent events and asks the server to report token usage in the last event."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx

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
    url = settings.external_base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {settings.external_api_key}"} if settings.external_api_key else {}
    body = {
        "model": settings.external_model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=settings.external_timeout_seconds) as reply:
            if reply.status_code != 200:
                log.warning("the external model endpoint answered HTTP %d", reply.status_code)
                raise ExternalUnavailable(f"{FAILED} (its endpoint answered HTTP {reply.status_code})")
            yield from _deltas(reply, generation)
    except httpx.TimeoutException as exc:
        generation.timed_out = True
        log.warning("the external model endpoint timed out after %s s", settings.external_timeout_seconds)
        raise ExternalUnavailable(f"{FAILED} (its endpoint timed out)") from exc
    except httpx.HTTPError as exc:  # its text names the URL
        log.warning("the external model endpoint could not be reached: %s", type(exc).__name__)
        raise ExternalUnavailable(f"{FAILED} (its endpoint could not be reached)") from exc
    finally:
        generation.wall_seconds = time.perf_counter() - started


def _deltas(reply: httpx.Response, generation: Generation) -> Iterator[str]:
    for line in reply.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            break
        try:
            event = json.loads(payload)
            if event.get("usage"):
                generation.prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
                generation.completion_tokens = int(event["usage"].get("completion_tokens", 0))
            choices = [
                (choice.get("delta") or {}, choice.get("finish_reason")) for choice in event.get("choices") or []
            ]
        except (ValueError, TypeError, AttributeError) as exc:  # not an OpenAI-shaped event
            log.warning("the external model endpoint sent an event that is not a chat completion chunk")
            raise ExternalUnavailable(f"{FAILED} (its endpoint sent a malformed reply)") from exc
        for delta, finish_reason in choices:
            text = delta.get("content") or ""
            generation.finish_reason = finish_reason or generation.finish_reason
            if text:
                generation.text += text
                yield text
