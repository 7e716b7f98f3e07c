"""Admin read-outs of the catalogue: documents and jobs, as plain dicts ready to print or serve."""

from __future__ import annotations

from datetime import UTC, datetime

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from penny import BadInput, Settings
from retrieval.catalogue import ChunkRow, Document, IngestionJob, JobError, open_catalogue, utcnow


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


def mark_dead_jobs(sessions: sessionmaker[Session]) -> list[int]:
    """Jobs recorded as running whose process is gone (killed with kill -9, or the machine restarted) are marked
    interrupted, so that `running` means a live process; returns their ids."""
    with sessions.begin() as session:
        dead = [
            job
            for job in session.scalars(select(IngestionJob).where(IngestionJob.status == "running"))
            if not _alive(job.pid, job.started_at)
        ]
        for job in dead:
            job.status, job.finished_at = "interrupted", utcnow()
            job.message = (
                f"the job's process ({job.pid}) ended before the job finished (killed or crashed); "
                "the previous index stayed live"
            )
        return [job.id for job in dead]


def _alive(pid: int, started_at: datetime) -> bool:
    """Whether `pid` is still the process that started a job at `started_at`: the pid of a process that has ended
    may already belong to a newer one."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists, and is as old as it is
        return True
    started = started_at if started_at.tzinfo else started_at.replace(tzinfo=UTC)
    return created <= started.timestamp() + 2  # the job's row is written after its process starts


def list_jobs(settings: Settings, limit: int = 20, job_id: int | None = None) -> list[dict]:
    sessions = open_catalogue(settings)
    mark_dead_jobs(sessions)
    with sessions() as session:
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
