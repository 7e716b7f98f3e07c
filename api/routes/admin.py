"""Admin endpoints: start ingestion jobs, read them, delete documents. Each needs an admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ServicesDep
from api.errors import ApiError, not_found
from api.jobs import ingest_request
from api.models import (
    COMMON_ERRORS,
    MAX_ID,
    DocumentDeleted,
    IngestBody,
    JobOut,
    JobStarted,
    UploadStarted,
    error_responses,
)
from api.uploads import discard_unindexed, store_uploads
from ingest.admin import list_jobs, show_document
from ingest.remove import remove_documents
from penny import BadInput, PennyError

router = APIRouter(prefix="/v1", tags=["admin"], responses=error_responses(*COMMON_ERRORS, 403, 404, 409, 503))
UPLOAD_PATH = "/v1/documents"
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/ingest", response_model=JobStarted, status_code=202)
async def start_ingest(body: IngestBody, _admin: AdminDep, services: ServicesDep):
    """Start ingesting files or folders on the server in the background; poll `url` for the outcome."""
    request = ingest_request(services.settings, body.paths, body.groups, body.source, body.prune)
    job_id = await run_in_threadpool(services.ingest.start, request)
    return JobStarted(job_id=job_id, status="running", url=f"/v1/jobs/{job_id}")


@router.post("/documents", response_model=UploadStarted, status_code=202)
async def upload_documents(
    files: Annotated[
        list[UploadFile], File(min_length=1, description="One or more documents: md, txt, html, pdf, docx")
    ],
    _admin: AdminDep,
    services: ServicesDep,
    groups: Annotated[list[str] | None, Form(description="Groups that may read them (repeat the field)")] = None,
    source: Annotated[str, Form(min_length=1, max_length=200)] = "upload",
):
    """Upload documents (multipart form, at most PENNY_MAX_UPLOAD_BYTES in all) and ingest them in the background.

    They are kept under the data directory's `uploads/` by file name: uploading a file of the same name again
    replaces it and updates its document; a file the job refuses is removed again. Poll `url` for the outcome."""
    stored = await run_in_threadpool(store_uploads, services.settings, [(f.filename, f.file) for f in files])
    request = ingest_request(
        services.settings, [str(path) for path in stored], groups or ["everyone"], source, prune=False
    )
    try:
        job_id = await run_in_threadpool(
            services.ingest.start, request, lambda: discard_unindexed(services.settings, stored)
        )
    except PennyError as exc:
        if exc.code != "job_running":
            raise
        raise ApiError(
            409, "job_running", "another ingestion job is running: upload the files again when it has finished"
        ) from exc
    return UploadStarted(
        job_id=job_id, status="running", url=f"/v1/jobs/{job_id}", stored=[path.name for path in stored]
    )


@router.get("/jobs", response_model=list[JobOut])
async def jobs(_admin: AdminDep, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=200)] = 20):
    return await run_in_threadpool(list_jobs, services.settings, limit)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def job(job_id: IdPath, _admin: AdminDep, services: ServicesDep):
    found = await run_in_threadpool(list_jobs, services.settings, 1, job_id)
    if not found:
        raise not_found("job_not_found", f"no ingestion job {job_id}")
    return found[0]


@router.delete("/documents/{document_id}", response_model=DocumentDeleted)
async def delete_document(document_id: IdPath, _admin: AdminDep, services: ServicesDep):
    """Delete a document and publish an index version without it."""
    try:  # looked up first: a job is recorded only for a deletion that can happen
        await run_in_threadpool(show_document, services.settings, document_id)
    except BadInput as exc:
        raise not_found("document_not_found", f"no document {document_id}") from exc
    try:
        report = await run_in_threadpool(remove_documents, services.settings, [document_id])
    except BadInput as exc:
        raise not_found("document_not_found", f"no document {document_id}") from exc
    return DocumentDeleted(removed=report.removed, index_version=report.index_version)
