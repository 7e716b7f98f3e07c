"""Every error the API returns: JSON `{"error": {"code", "message", "request_id"}}` with a stable code.

The shape is OpenAI's (`error.message`, `error.code`), so OpenAI clients show Penny's messages as they are.
No stack trace ever leaves the server: unexpected exceptions are logged with the request id and answered 500.
"""

from __future__ import annotations

import logging

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from penny import BadInput, IndexUnavailable, ModelNotFound, PennyError

log = logging.getLogger("penny.api")


class ApiError(Exception):
    """An error the API answers with `status` and a stable `code`; `headers` travel with it (Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


# PennyError codes raised by the library layers, by HTTP status; anything else a PennyError says is a 500.
_PENNY_STATUS: dict[str, int] = {
    BadInput.code: 400,
    "job_running": 409,
    "path_not_allowed": 403,  # ingest.pipeline's: a server path outside the ingestion roots
    IndexUnavailable.code: 503,
    ModelNotFound.code: 503,
    "external_unavailable": 502,  # answer.external's: its message names neither the endpoint nor its reply
}

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": correlation_id.get() or ""}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _penny_error(_request: Request, exc: PennyError) -> JSONResponse:
    status = _PENNY_STATUS.get(exc.code, 500)
    if status == 500:
        log.error("library error %s: %s", exc.code, exc)
    return error_response(status, exc.code, str(exc))


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    described = "; ".join(
        f"{'.'.join(str(part) for part in problem.get('loc', ()) if part != 'body') or 'body'}: {problem.get('msg')}"
        for problem in problems[:5]
    )
    return error_response(422, "invalid_request", f"the request does not match the schema: {described}")


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = {
        404: "no such endpoint; see /docs for the API",
        405: "this endpoint does not take that method; see /docs for the API",
    }.get(exc.status_code, str(exc.detail))  # a 413's detail names the limit that was passed
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    response = error_response(500, "internal_error", "the server failed to handle this request; it has been logged")
    # this response leaves from outside the request-id middleware, so it carries the id itself
    response.headers["X-Request-ID"] = correlation_id.get() or ""
    return response


def stream_error(exc: Exception) -> dict:
    """The error body for a failure after a streamed response has started (its status is already sent)."""
    if isinstance(exc, ApiError):
        code, message = exc.code, exc.message
    elif isinstance(exc, PennyError):
        code, message = exc.code, str(exc)
    else:
        log.error("unexpected error while streaming", exc_info=exc)
        code, message = "internal_error", "the server failed while streaming this answer; it has been logged"
    return {"error": {"code": code, "message": message, "request_id": correlation_id.get() or ""}}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(PennyError, _penny_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
