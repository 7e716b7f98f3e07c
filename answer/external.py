"""The larger tier: any OpenAI-compatible chat-completions endpoint, used when configured and the local model is
not enough. Streams with server-sent events and asks the server to report token usage in the last event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from answer.llm import Generation
from penny import PennyError, Settings


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
                reply.read()
                raise ExternalUnavailable(
                    f"external model endpoint {url} answered {reply.status_code}: {reply.text[:200]}"
                )
            for line in reply.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[len("data:") :].strip()
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                if event.get("usage"):
                    generation.prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
                    generation.completion_tokens = int(event["usage"].get("completion_tokens", 0))
                for choice in event.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content") or ""
                    generation.finish_reason = choice.get("finish_reason") or generation.finish_reason
                    if delta:
                        generation.text += delta
                        yield delta
    except httpx.TimeoutException as exc:
        generation.timed_out = True
        raise ExternalUnavailable(f"external model endpoint {url} timed out") from exc
    except httpx.HTTPError as exc:
        raise ExternalUnavailable(f"external model endpoint {url} failed: {exc}") from exc
    finally:
        generation.wall_seconds = time.perf_counter() - started
