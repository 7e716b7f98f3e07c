"""Admin read-outs of the catalogue: documents and jobs, as plain dicts ready to print or serve."""

from __future__ import annotations

from sqlalchemy import select

from penny import BadInput, Settings
from retrieval.catalogue import ChunkRow, Document, IngestionJob, JobError, open_catalogue


def _document_dict(doc: Document) -> dict:
    return {
        "id": doc.id,
        "path": doc.path,
        "source": doc.source,
        "title": doc.title,
        "doc_type": doc.doc_type,
        "groups": doc.groups,
        "status": doc.status,
        "error": doc.error,
        "chunk_count": doc.chunk_count,
        "sha256": doc.sha256,
        "size": doc.size,
        "updated_at": doc.updated_at,
    }


def list_documents(settings: Settings, status: str | None = None, groups: list[str] | None = None) -> list[dict]:
    """Documents, optionally only those with `status`, and (for a caller with groups) only those it may see."""
    with open_catalogue(settings)() as session:
        query = select(Document).order_by(Document.id)
        if status:
            query = query.where(Document.status == status)
        docs = [_document_dict(doc) for doc in session.scalars(query)]
    if groups is not None:
        docs = [doc for doc in docs if set(doc["groups"]) & set(groups)]
    return docs


def show_document(settings: Settings, document_id: int) -> dict:
    with open_catalogue(settings)() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            raise BadInput(f"no document with id {document_id}; `penny documents list` shows the ids")
        chunks = session.scalars(select(ChunkRow).where(ChunkRow.document_id == doc.id).order_by(ChunkRow.ordinal))
        return {
            **_document_dict(doc),
            "chunks": [
                {
                    "id": c.id,
                    "ordinal": c.ordinal,
                    "section": c.section,
                    "page": c.page,
                    "text": c.text,
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                    "token_count": c.token_count,
                }
                for c in chunks
            ],
        }


def list_jobs(settings: Settings, limit: int = 20, job_id: int | None = None) -> list[dict]:
    with open_catalogue(settings)() as session:
        query = select(IngestionJob).order_by(IngestionJob.id.desc()).limit(limit)
        if job_id is not None:
            query = select(IngestionJob).where(IngestionJob.id == job_id)
        jobs = []
        for job in session.scalars(query):
            errors = session.scalars(select(JobError).where(JobError.job_id == job.id)).all()
            jobs.append(
                {
                    "id": job.id,
                    "status": job.status,
                    "started_at": job.started_at,
                    "finished_at": job.finished_at,
                    "counts": job.counts,
                    "index_version": job.index_version,
                    "message": job.message,
                    "errors": [{"path": e.path, "kind": e.kind, "reason": e.reason} for e in errors],
                }
            )
        return jobs
