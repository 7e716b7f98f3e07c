"""Deleting documents: a job of its own, publishing an index version without them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.job import JobReport, ingestion_job
from ingest.publish import carry_sentence_mark, current_version, publishing
from penny import BadInput, Settings
from retrieval.catalogue import Document


def remove_documents(settings: Settings, document_ids: list[int]) -> JobReport:
    """Delete documents from the catalogue and publish an index version without them, as one job. Every id must
    exist, or nothing is deleted."""
    with ingestion_job(settings, []) as (sessions, report):
        previous = current_version(sessions)
        with publishing(settings, sessions, report) as session:
            report.removed = _delete(session, document_ids)
        carry_sentence_mark(settings, previous, report.index_version)
    return report


def _delete(session: Session, document_ids: list[int]) -> int:
    found = session.scalars(select(Document).where(Document.id.in_(document_ids))).all()
    missing = set(document_ids) - {doc.id for doc in found}
    if missing:
        raise BadInput(f"no document with id {', '.join(map(str, sorted(missing)))}")
    for document in found:
        session.delete(document)  # its chunks go with it (the catalogue's foreign keys cascade)
    return len(found)
