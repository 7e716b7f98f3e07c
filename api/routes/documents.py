"""Documents as a caller may see them: an admin sees all; anyone else only those sharing one of its groups."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, ServicesDep
from api.errors import not_found
from api.keys import Caller
from api.models import COMMON_ERRORS, MAX_ID, DocumentDetail, DocumentOut, error_responses
from ingest.admin import list_documents, show_document
from penny import BadInput

router = APIRouter(
    prefix="/v1/documents", tags=["documents"], responses=error_responses(*COMMON_ERRORS, 403, 404, 409, 503)
)


def _visible_groups(caller: Caller) -> list[str] | None:
    return None if caller.is_admin else list(caller.groups)


@router.get("", response_model=list[DocumentOut])
async def documents(caller: CallerDep, services: ServicesDep, status: Literal["indexed", "failed"] | None = None):
    return await run_in_threadpool(list_documents, services.settings, status, _visible_groups(caller))


@router.get("/{document_id}", response_model=DocumentDetail)
async def document(document_id: Annotated[int, Path(ge=1, le=MAX_ID)], caller: CallerDep, services: ServicesDep):
    """One document with its chunks (what citations link to)."""
    try:
        found = await run_in_threadpool(show_document, services.settings, document_id)
    except BadInput:
        found = None
    groups = _visible_groups(caller)
    if found is None or (groups is not None and not set(found["groups"]) & set(groups)):
        raise not_found("document_not_found", f"no document {document_id} that your key may read")
    found.pop("sha256", None)
    return found
