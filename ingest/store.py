"""What one job will write to the catalogue (its `Plan`), and writing it: documents with their chunks, new mtimes
and labels, failure records, and removals. Everything here runs inside the job's closing transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ingest.chunk import ChunkDraft
from ingest.job import JobReport
from ingest.parse import PARSER_VERSION, ParsedDocument
from ingest.scan import FileChange
from retrieval.build import Difference
from retrieval.catalogue import ChunkRow, Document, JobError, utcnow
from retrieval.indexer import index_text, text_sha256

log = logging.getLogger("penny.ingest")


@dataclass(frozen=True)
class Staged:
    """A new or changed document, parsed and chunked: `change` holds its hash and size as parsing read them."""

    change: FileChange
    parsed: ParsedDocument
    drafts: list[ChunkDraft]


@dataclass
class Plan:
    """What one job will change, decided before anything is written."""

    groups: list[str]
    source: str
    chunking: str
    stale: list[Difference] = field(default_factory=list)  # build settings the live version differs in
    staged: list[Staged] = field(default_factory=list)
    relabelled: list[FileChange] = field(default_factory=list)
    touched: list[FileChange] = field(default_factory=list)
    failures: list[FileChange] = field(default_factory=list)  # refused and failed, in the order they were met
    gone: list[FileChange] = field(default_factory=list)

    @property
    def changes_index(self) -> bool:
        return bool(self.staged or self.relabelled or self.gone or self.stale)

    def chunk_texts(self) -> list[str]:
        """Every staged chunk's own text, as an answer reads it."""
        return [d.text for item in self.staged for d in item.drafts]

    def texts(self) -> dict[str, str]:
        """The text the index sees of every staged chunk, by its hash (the embedding cache's key)."""
        return {
            text_sha256(t): t
            for item in self.staged
            for t in (index_text(item.parsed.title, d.section, d.text) for d in item.drafts)
        }


def write_plan(session: Session, plan: Plan, known: dict[str, Document], report: JobReport) -> None:
    """Write `plan` into the session; `known` is the catalogue's documents by path as the job found them."""
    for item in plan.staged:
        _store_document(session, item, known.get(item.change.path), plan, report)
    for change in plan.touched:
        session.execute(update(Document).where(Document.path == change.path).values(mtime=change.mtime))
    for change in plan.relabelled:  # its mtime is left as it was: should it have moved, the next job hashes again
        document = session.scalars(select(Document).where(Document.path == change.path)).one()
        document.groups, document.source, document.updated_at = plan.groups, plan.source, utcnow()
        report.updated += 1
    for change in plan.failures:
        _record_failure(session, report, change, known.get(change.path), plan)
    for change in plan.gone:
        session.execute(delete(Document).where(Document.path == change.path))
        report.removed += 1


def _store_document(session: Session, item: Staged, known: Document | None, plan: Plan, report: JobReport) -> None:
    document = session.get(Document, known.id) if known else None
    if document is None:
        document = Document(path=item.change.path, created_at=utcnow())
        session.add(document)
        report.added += 1
    else:
        session.execute(delete(ChunkRow).where(ChunkRow.document_id == document.id))
        report.updated += 1
    change, parsed = item.change, item.parsed
    document.source, document.sha256 = plan.source, change.sha256
    document.size, document.mtime = change.size, change.mtime
    document.title, document.doc_type, document.groups = parsed.title[:500], parsed.doc_type, plan.groups
    document.chunking = plan.chunking
    document.status, document.error, document.chunk_count = "indexed", None, len(item.drafts)
    document.parser_version = PARSER_VERSION
    document.updated_at = utcnow()
    session.flush()
    session.add_all(_chunk_rows(document.id, parsed.title, item.drafts))
    report.chunks_added += len(item.drafts)


def _chunk_rows(document_id: int, title: str, drafts: list[ChunkDraft]) -> list[ChunkRow]:
    return [
        ChunkRow(
            document_id=document_id,
            ordinal=d.ordinal,
            text=d.text,
            text_sha256=text_sha256(index_text(title, d.section, d.text)),
            title=title[:500],
            section=d.section[:1000],
            page=d.page,
            char_start=d.char_start,
            char_end=d.char_end,
            token_count=d.token_count,
        )
        for d in drafts
    ]


def _record_failure(
    session: Session, report: JobReport, change: FileChange, known: Document | None, plan: Plan
) -> None:
    path, kind, reason = change.path, change.failure_kind, change.failure_reason
    session.add(JobError(job_id=report.job_id, path=path, kind=kind, reason=reason))
    log.warning("%s: %s (%s)", path, reason, kind)
    report.errors.append({"path": path, "kind": kind, "reason": reason})
    if kind == "unsupported":
        report.skipped += 1
        return
    report.failed += 1
    if known is not None:  # keep serving the last good content; remember why the new one was refused
        document = session.get(Document, known.id)
        document.error = f"{kind}: {reason}"
        return
    if change.kind == "refused":  # never read: not a document of ours, only the job's error says why
        return
    session.add(
        Document(
            path=path,
            source=plan.source,
            sha256=change.sha256,
            size=change.size,
            mtime=change.mtime,
            title="",
            doc_type=Path(path).suffix.lower().lstrip(".")[:20],
            groups=plan.groups,
            status="failed",
            error=f"{kind}: {reason}",
            chunk_count=0,
        )
    )
