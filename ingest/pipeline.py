"""The ingestion job: walk, detect changes by content hash, parse, chunk, embed, and publish one new index version.

A job is restartable at any point: embeddings are committed batch by batch as they are made, while documents,
chunks and the live index version change together in one transaction at the end. A job killed before that
commit leaves the previous version in force; the next run re-parses what changed and reuses every embedding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ingest.chunk import ChunkDraft, chunk_document
from ingest.files import is_under, read_bounded, regular_stat, resolve_within, too_large
from ingest.job import JobReport, Progress, ingestion_job, record_finish
from ingest.parallel import parse_files
from ingest.parse import PARSER_VERSION, SUPPORTED, Block, ParsedDocument, ParseFailure, doc_type_of
from penny import BadInput, Settings
from retrieval.build import Difference, build_settings, chunking_key, differences, stale_stages
from retrieval.catalogue import ChunkRow, Document, JobError, live_version, utcnow
from retrieval.embedder import get_embedder
from retrieval.indexer import (
    embed_missing,
    index_text,
    indexed_texts,
    publish_version,
    text_sha256,
    tidy_versions,
)
from retrieval.snapshot import read_manifest

log = logging.getLogger("penny.ingest")


# What the next job redoes when a build setting changed (retrieval/build.py's stages).
_REDO = {
    "chunking": "re-chunking the documents cut with the old settings, embedding only chunks not seen before",
    "embedding": "re-embedding every chunk with the new model or variant",
    "bm25": "rebuilding the BM25 index (embeddings reused)",
    "ann": "rebuilding the dense index (embeddings reused)",
}


class PathNotAllowed(BadInput):
    code = "path_not_allowed"


@dataclass
class _Staged:
    """A file that needs (re)indexing, with what was made of it."""

    path: str
    sha256: str
    size: int
    mtime: float
    parsed: ParsedDocument | None = None
    drafts: list[ChunkDraft] = field(default_factory=list)


@dataclass
class IngestRequest:
    paths: list[Path]
    groups: list[str] = field(default_factory=lambda: ["everyone"])
    source: str = "default"
    prune: bool = False
    # folders the paths must really lie in (the API's ingestion roots); None: an operator's command, any path.
    # Either way, a link found inside a folder may not lead out of that folder.
    roots: list[Path] | None = None


def ingest(settings: Settings, request: IngestRequest, progress: Progress | None = None) -> JobReport:
    """Run one ingestion job to completion and return its report."""
    progress = progress or Progress()
    validate_request(request)
    with ingestion_job(settings, request.paths) as (sessions, report):
        progress.job_started(report.job_id)
        _run(settings, sessions, request, report, progress)
    return report


def remove_documents(settings: Settings, document_ids: list[int]) -> JobReport:
    """Delete documents from the catalogue and publish an index version without them, as one job."""
    with ingestion_job(settings, []) as (sessions, report):
        with sessions.begin() as session:
            found = session.scalars(select(Document).where(Document.id.in_(document_ids))).all()
            missing = set(document_ids) - {doc.id for doc in found}
            if missing:
                raise BadInput(f"no document with id {', '.join(map(str, sorted(missing)))}")
            for document in found:
                session.delete(document)
            session.flush()
            report.removed = len(found)
            dimension = get_embedder(settings).dimension
            report.index_version = publish_version(session, settings, dimension, report.job_id)
            record_finish(session, report, "succeeded", None)
        tidy_versions(sessions, settings)
    return report


def validate_request(request: IngestRequest) -> None:
    """Refuse a request that cannot start: no paths, paths outside its roots or missing, empty group names."""
    if not request.paths:
        raise BadInput("give at least one file or folder to ingest")
    if request.roots is not None:  # checked before existence: what lies outside the roots is not even probed
        outside = [str(p) for p in request.paths if _root_of(os.path.realpath(p), request.roots) is None]
        if outside:
            allowed = ", ".join(str(r) for r in request.roots)
            raise PathNotAllowed(
                f"{', '.join(outside)}: not inside the ingestion roots ({allowed}); "
                "add the folder to PENNY_INGEST_ROOTS, or upload the files"
            )
    missing = [str(p) for p in request.paths if not p.exists()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    if not request.groups or any(not g.strip() for g in request.groups):
        raise BadInput("groups must be non-empty names")


@dataclass
class _Plan:
    """What one job will change, decided before anything is written."""

    groups: list[str]
    source: str
    chunking: str
    stale: list[Difference] = field(default_factory=list)  # build settings the live version differs in
    staged: list[_Staged] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    touched: list[tuple[str, float]] = field(default_factory=list)
    failures: list[tuple[str, str, str, _Staged | None]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def changes_index(self) -> bool:
        return bool(self.staged or self.relabelled or self.gone or self.stale)


def _root_of(real: str, roots: list[Path]) -> str | None:
    return next((r for r in map(os.path.realpath, roots) if is_under(real, r)), None)


def _files(request: IngestRequest) -> dict[str, str | None]:
    """Every file to examine, with the real folder it must resolve into: the folder it was found in, or for a
    file named itself, the ingestion root it lies in (None for an operator's command: it may lead anywhere)."""
    files: dict[str, str | None] = {}
    for root in request.paths:
        if root.is_dir():
            within = os.path.realpath(root)
        elif request.roots is not None:
            within = _root_of(os.path.realpath(root), request.roots) or os.path.realpath(root)
        else:
            within = None
        for path in _walk(root):  # folder links are not walked; file links are checked against `within`
            files.setdefault(os.path.abspath(path), within)
    return dict(sorted(files.items()))


def _run(settings: Settings, sessions, request: IngestRequest, report: JobReport, progress: Progress) -> None:
    embedder = get_embedder(settings)
    files = _files(request)
    roots = [os.path.abspath(p) for p in request.paths]
    progress.start(len(files))
    started = time.perf_counter()
    known = _known_documents(sessions)
    plan = _Plan(groups=sorted(set(request.groups)), source=request.source, chunking=chunking_key(settings))
    plan.stale = _stale_build(settings, sessions)
    to_parse: dict[str, _Staged] = {}
    for path, within in files.items():
        report.files_seen += 1
        outcome = _examine(Path(path), within, known.get(path), settings, plan.groups, request.source)
        if isinstance(outcome, _Staged):
            to_parse[path] = outcome
            continue
        if isinstance(outcome, ParseFailure):
            plan.failures.append((path, outcome.kind, outcome.reason, None))
        elif outcome == "unchanged":
            report.unchanged += 1
        elif outcome == "relabel":
            plan.relabelled.append(path)
        else:
            plan.touched.append((path, outcome[1]))
            report.unchanged += 1
        progress.advance(files=1)
    for result in parse_files(list(to_parse), settings, files):
        item = to_parse[result.path]
        item.sha256, item.size = result.sha256, result.size  # as parsed, should the file have changed meanwhile
        if result.failure_kind:
            plan.failures.append((result.path, result.failure_kind, result.failure_reason, item))
        else:
            item.parsed, item.drafts = result.parsed, list(result.drafts)
            plan.staged.append(item)
        progress.advance(files=1, chunks=len(result.drafts))
    if request.prune:
        present = set(files)
        plan.gone = [p for p in known if p not in present and any(is_under(p, r) for r in roots)]
    report.seconds["scan"] = round(time.perf_counter() - started, 3)
    _embed_and_publish(settings, sessions, embedder, plan, known, report, progress)


def _stale_build(settings: Settings, sessions) -> list[Difference]:
    """The settings the live index version was built with that differ from today's (none when nothing is live)."""
    with sessions() as session:
        version = live_version(session)
    if version is None:
        return []
    manifest = read_manifest(settings, version) or {}
    return differences(manifest.get("build"), build_settings(settings, manifest.get("chunks", 0)))


def _known_documents(sessions) -> dict[str, Document]:
    with sessions() as session:
        known = {doc.path: doc for doc in session.scalars(select(Document))}
        session.expunge_all()
    return known


def _embed_and_publish(settings, sessions, embedder, plan: _Plan, known, report: JobReport, progress) -> None:
    texts = {
        text_sha256(t): t
        for item in plan.staged
        for t in (index_text(item.parsed.title, d.section, d.text) for d in item.drafts)
    }
    stages = stale_stages(plan.stale)
    report.rebuilt = [f"{d.describe()}: {_REDO[d.stage]}" for d in plan.stale]
    for line in report.rebuilt:
        log.info("settings changed since the live index version: %s", line)
    if "embedding" in stages:  # a new model or variant: every chunk kept is embedded again
        with sessions() as session:
            texts = {**indexed_texts(session), **texts}
    started = time.perf_counter()
    report.chunks_embedded = embed_missing(
        sessions,
        embedder,
        texts,
        on_batch=lambda n: progress.advance(embedded=n),
        on_start=lambda total: progress.stage("embedding", total),
    )
    report.seconds["embed"] = round(time.perf_counter() - started, 3)
    progress.stage("publishing")
    started = time.perf_counter()
    with sessions.begin() as session:
        for item in plan.staged:
            _store_document(session, item, known.get(item.path), plan, report)
        for path, mtime in plan.touched:
            session.execute(update(Document).where(Document.path == path).values(mtime=mtime))
        for path in plan.relabelled:
            document = session.scalars(select(Document).where(Document.path == path)).one()
            document.groups, document.source, document.updated_at = plan.groups, plan.source, utcnow()
            report.updated += 1
        for path, kind, reason, item in plan.failures:
            _record_failure(session, report, path, kind, reason, item, known.get(path), plan.groups, plan.source)
        for path in plan.gone:
            session.execute(delete(Document).where(Document.path == path))
            report.removed += 1
        session.flush()
        if plan.changes_index:
            report.index_version = publish_version(session, settings, embedder.dimension, report.job_id)
        report.seconds["publish"] = round(time.perf_counter() - started, 3)
        record_finish(session, report, "succeeded", None)
    if plan.changes_index:
        tidy_versions(sessions, settings)


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
        known = _known_documents(sessions)
        plan = _Plan(groups=sorted(set(groups or ["everyone"])), source=source, chunking=chunking_key(settings))
        plan.stale = _stale_build(settings, sessions)
        progress.start(len(records))
        for record in records:
            report.files_seen += 1
            path = record_path(source, record.id)
            content = f"{record.title}\n{record.text}".encode()
            digest = hashlib.sha256(content).hexdigest()
            doc = known.get(path)
            if doc and doc.sha256 == digest and doc.groups == plan.groups and doc.chunking == plan.chunking:
                report.unchanged += 1
            else:
                item = _Staged(path=path, sha256=digest, size=len(content), mtime=0.0)
                blocks = [Block(record.text.strip() or record.title, (record.title,) if record.title else (), None)]
                item.parsed = ParsedDocument(title=record.title or record.id, doc_type="record", blocks=blocks)
                item.drafts = chunk_document(
                    item.parsed, embedder.count_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens
                )
                plan.staged.append(item)
            progress.advance(files=1)
        given = {record_path(source, r.id) for r in records}
        prefix = record_path(source, "")
        plan.gone = [p for p in known if p.startswith(prefix) and p not in given]
        _embed_and_publish(settings, sessions, embedder, plan, known, report, progress)
    return report


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():  # a file named itself, whatever it is: examining it says why it is refused
        yield root
        return
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(folder) / name


def _examine(path: Path, within: str | None, known: Document | None, settings: Settings, groups: list[str],
             source: str):  # fmt: skip
    """'unchanged'; ('touched', mtime) for the same content with a new mtime; 'relabel' for the same content with
    new groups or source; a _Staged to (re)index; or a ParseFailure."""
    try:
        doc_type_of(path)
        stat = regular_stat(resolve_within(str(path), within))
        if stat.st_size > settings.max_file_bytes:
            return too_large(f"{stat.st_size:,} bytes", settings.max_file_bytes)
        same_labels = known is not None and known.groups == groups and known.source == source
        indexed = known is not None and known.status == "indexed"
        # read by an older parser, or cut with other chunking settings: read it again
        if indexed and (known.parser_version < PARSER_VERSION or known.chunking != chunking_key(settings)):
            return _Staged(path=str(path), sha256="", size=stat.st_size, mtime=stat.st_mtime)
        if indexed and known.size == stat.st_size and known.mtime == stat.st_mtime:
            return "unchanged" if same_labels else "relabel"
        # an indexed file with a new mtime may hold the same bytes: hash it before paying for a parse
        digest = hashlib.sha256(read_bounded(str(path), within, settings.max_file_bytes)).hexdigest() if indexed else ""
    except ParseFailure as failure:
        return failure
    except OSError as exc:
        return ParseFailure("unreadable", f"cannot read the file: {exc.strerror or exc}")
    if indexed and known.sha256 == digest:
        return ("touched", stat.st_mtime) if same_labels else "relabel"
    return _Staged(path=str(path), sha256=digest, size=stat.st_size, mtime=stat.st_mtime)


def _store_document(session: Session, item: _Staged, known: Document | None, plan: _Plan, report: JobReport) -> None:
    document = session.get(Document, known.id) if known else None
    if document is None:
        document = Document(path=item.path, created_at=utcnow())
        session.add(document)
        report.added += 1
    else:
        session.execute(delete(ChunkRow).where(ChunkRow.document_id == document.id))
        report.updated += 1
    parsed = item.parsed
    document.source, document.sha256, document.size, document.mtime = plan.source, item.sha256, item.size, item.mtime
    document.title, document.doc_type, document.groups = parsed.title[:500], parsed.doc_type, plan.groups
    document.chunking = plan.chunking
    document.status, document.error, document.chunk_count = "indexed", None, len(item.drafts)
    document.parser_version = PARSER_VERSION
    document.updated_at = utcnow()
    session.flush()
    session.add_all(
        ChunkRow(
            document_id=document.id,
            ordinal=d.ordinal,
            text=d.text,
            text_sha256=text_sha256(index_text(parsed.title, d.section, d.text)),
            title=parsed.title[:500],
            section=d.section[:1000],
            page=d.page,
            char_start=d.char_start,
            char_end=d.char_end,
            token_count=d.token_count,
        )
        for d in item.drafts
    )
    report.chunks_added += len(item.drafts)


def _record_failure(session, report, path, kind, reason, item, known, groups, source) -> None:
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
    if item is None:
        return
    session.add(
        Document(path=path, source=source, sha256=item.sha256, size=item.size, mtime=item.mtime, title="",
                 doc_type=Path(path).suffix.lower().lstrip(".")[:20], groups=groups, status="failed",
                 error=f"{kind}: {reason}", chunk_count=0)
    )  # fmt: skip


SUPPORTED_SUFFIXES = sorted(SUPPORTED)
