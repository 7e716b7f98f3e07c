"""Passages only, no answer: what retrieval finds for a query among the documents the key may read."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.answering import check_question
from api.deps import CallerDep, ServicesDep
from api.models import COMMON_ERRORS, SearchRequest, SearchResponse, error_responses
from retrieval.search import SearchFilter

router = APIRouter(prefix="/v1", tags=["search"], responses=error_responses(*COMMON_ERRORS, 503))


@router.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, caller: CallerDep, services: ServicesDep):
    query = check_question(services.settings, body.query)
    started = time.monotonic()
    search_filter = SearchFilter(groups=caller.groups, document_ids=tuple(body.document_ids))
    result = await run_in_threadpool(services.searcher.search, query, body.k, search_filter)
    services.metrics.searches.inc()
    services.metrics.search_seconds.observe(time.monotonic() - started)
    return SearchResponse.model_validate(result)
