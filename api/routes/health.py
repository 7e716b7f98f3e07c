"""Liveness, readiness and Prometheus metrics: open endpoints, no key needed."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.errors import ApiError
from api.models import error_responses
from penny import IndexUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz():
    """The process is alive and serving."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(services: ServicesDep):
    """The catalogue answers and a live index version is loaded: the service can answer questions."""

    def check() -> int:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
        return services.searcher.snapshot().version

    try:
        version = await run_in_threadpool(check)
    except IndexUnavailable as exc:
        raise ApiError(503, "not_ready", f"no index is loaded: {exc}") from exc
    except SQLAlchemyError as exc:
        raise ApiError(503, "not_ready", "the catalogue database does not answer") from exc
    return {"status": "ready", "index_version": version, "llm_queue": services.gate.pending}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(services: ServicesDep):
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
