"""Passages that arrive as text rather than as files (a BEIR-style corpus line, for eval): stored as documents at
`record://SOURCE/ID`, chunked like files but never parsed, and published like any other job's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk import chunk_document
from ingest.job import JobReport, Progress, ingestion_job
from ingest.parse import Block, ParsedDocument
from ingest.publish import embed_and_publish, stale_build
from ingest.scan import FileChange, known_documents
from ingest.store import Plan, Staged
from penny import BadInput, Settings
from retrieval.build import chunking_key
from retrieval.catalogue import Document
from retrieval.embedder import Embedder, get_embedder


@dataclass(frozen=True)
class Record:
    """A passage that arrives as text rather than as a file (a BEIR-style corpus line)."""

    id: str
    title: str
    text: str


def record_path(source: str, record_id: str) -> str:
    return f"record://{source}/{record_id}"


def ingest_records(
    settings: Settings,
    records: list[Record],
    source: str,
    groups: list[str] | None = None,
    progress: Progress | None = None,
) -> JobReport:
    """Ingest text records as documents at `record://SOURCE/ID` (chunked like files, never parsed). Records of
    this source that are no longer given are removed, so the source mirrors `records` exactly."""
    progress = progress or Progress()
    if not records:
        raise BadInput("no records to ingest")
    with ingestion_job(settings, [Path(f"record://{source}")]) as (sessions, report):
        embedder = get_embedder(settings)
        known = known_documents(sessions)
        plan = Plan(groups=sorted(set(groups or ["everyone"])), source=source, chunking=chunking_key(settings))
        plan.stale = stale_build(settings, sessions)
        progress.start(len(records))
        for record in records:
            report.files_seen += 1
            change = _compare(record, source, known, plan)
            if change.kind == "unchanged":
                report.unchanged += 1
            else:
                plan.staged.append(_stage(record, change, embedder, settings))
            progress.advance(files=1)
        given = {record_path(source, r.id) for r in records}
        prefix = record_path(source, "")
        plan.gone = [FileChange(p, "removed") for p in known if p.startswith(prefix) and p not in given]
        embed_and_publish(settings, sessions, embedder, plan, known, report, progress)
    return report


def _compare(record: Record, source: str, known: dict[str, Document], plan: Plan) -> FileChange:
    """A record is unchanged while its text, groups and chunking settings are; its source is part of its path."""
    path = record_path(source, record.id)
    content = f"{record.title}\n{record.text}".encode()
    digest = hashlib.sha256(content).hexdigest()
    doc = known.get(path)
    if doc and doc.sha256 == digest and doc.groups == plan.groups and doc.chunking == plan.chunking:
        return FileChange(path, "unchanged", len(content), 0.0, digest)
    return FileChange(path, "changed" if doc else "new", len(content), 0.0, digest)


def _stage(record: Record, change: FileChange, embedder: Embedder, settings: Settings) -> Staged:
    blocks = [Block(record.text.strip() or record.title, (record.title,) if record.title else (), None)]
    parsed = ParsedDocument(title=record.title or record.id, doc_type="record", blocks=blocks)
    drafts = chunk_document(parsed, embedder.count_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens)
    return Staged(change, parsed, drafts)
