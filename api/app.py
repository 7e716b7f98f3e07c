"""The FastAPI application: assembles routers, middleware and error handlers; the work lives in the routers.

`uvicorn --factory api.app:create_app` or `penny serve` runs it. Tests pass their own Settings to create_app
(or override the `api.deps.get_settings` dependency).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.body_limit import BodyLimit
from api.errors import install_error_handlers
from api.logs import AccessLog
from api.routes import admin, chat, documents, health, openai, search, web
from api.services import GateFactory, local_gate, release, services_for
from ingest.admin import mark_dead_jobs
from penny import IndexUnavailable, Settings, get_settings

log = logging.getLogger("penny.api")


def create_app(settings: Settings | None = None, make_gate: GateFactory = local_gate) -> FastAPI:
    """The app; `make_gate` builds its LLM gate (api/serve.py's replicas send generation to the LLM's deployment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = services_for(settings, make_gate)
        await run_in_threadpool(mark_dead_jobs, services.sessions)  # jobs killed with an earlier server say so
        try:  # load the embedding model and the live index now, not on the first question
            await run_in_threadpool(services.searcher.search, "warm up", 1)
        except IndexUnavailable as exc:
            log.warning("starting without an index: %s", exc)
        yield
        release(settings)

    app = FastAPI(
        title="Penny",
        summary="Answers from your company's documents at the lowest cost per correct answer.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (health, chat, openai, search, documents, admin, web):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        uploads={admin.UPLOAD_PATH: settings.max_upload_bytes},
        read_timeout=settings.request_read_timeout_seconds,
    )
    app.add_middleware(AccessLog)
    if settings.cors_origins:  # a browser front-end on another origin sends a preflight before each call
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")  # outermost: every line has the id
    return app
