"""Refuses request bodies over their limit with the API's JSON 413, declared length or not: PENNY_MAX_REQUEST_BYTES
for every endpoint except document uploads, which have PENNY_MAX_UPLOAD_BYTES. A body that stops arriving for
PENNY_REQUEST_READ_TIMEOUT_SECONDS is answered 408, so a half-sent request cannot hold a connection and its
worker for long (uvicorn bounds only the wait between requests, not the wait inside one)."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

MESSAGE = "the request body is larger than the limit of {limit:,} bytes ({setting})"
TIMEOUT = "the request body stopped arriving for {seconds:g} s (PENNY_REQUEST_READ_TIMEOUT_SECONDS)"


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None, read_timeout: float = 15.0
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}  # POST path -> its own limit
        self.read_timeout = read_timeout

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        if scope.get("method") == "POST" and scope.get("path") in self.uploads:
            return self.uploads[scope["path"]], "PENNY_MAX_UPLOAD_BYTES"
        return self.max_bytes, "PENNY_MAX_REQUEST_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope)
        message = MESSAGE.format(limit=limit, setting=setting)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(413, "payload_too_large", message)(scope, receive, send)
            return
        received = 0
        body_done = False

        async def counted() -> Message:
            nonlocal received, body_done
            if body_done:  # later calls wait for a disconnect while streaming a response: no deadline there
                return await receive()
            try:
                incoming = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise HTTPException(408, detail=TIMEOUT.format(seconds=self.read_timeout)) from None
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                body_done = not incoming.get("more_body", False)
                if received > limit:  # a chunked body with no length: the error handler answers 413
                    raise HTTPException(413, detail=message)
            return incoming

        await self.app(scope, counted, send)
