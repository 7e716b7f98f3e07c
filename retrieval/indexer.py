"""Writing side of retrieval: the embedding cache, publishing a new index version from the catalogue (one new
segment per job, retrieval/snapshot.py), compaction and the index's status."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from penny import BadInput, IndexUnavailable, PennyError, Settings
from retrieval.build import OTHERWISE_CHUNKED, build_settings, chunking_key, differences
from retrieval.calibration import calibrate_version
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, IndexVersion, live_version, open_catalogue
from retrieval.embedder import Embedder, embedding_key
from retrieval.snapshot import (
    FORMAT_VERSION,
    DocumentMeta,
    Layout,
    SegmentRef,
    SegmentRows,
    read_layout,
    read_manifest,
    remove_unused,
    write_segment,
    write_version,
)

_LOOKUP_BATCH = 500


def index_text(title: str, section: str, text: str) -> str:
    """What BM25 and the embedder see of a chunk: its heading path (or title) and its text."""
    return f"{section or title}\n{text}"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def missing_embeddings(session: Session, model: str, hashes: Iterable[str]) -> set[str]:
    wanted = set(hashes)
    return wanted - {digest for (digest,) in _embedding_rows(session, model, wanted, EmbeddingRow.text_sha256)}


def _embedding_rows(session: Session, model: str, hashes: Iterable[str], *columns) -> Iterator:
    """`columns` of the embedding rows stored under `model` for those `hashes`, looked up in bounded batches."""
    unique = sorted(set(hashes))
    for i in range(0, len(unique), _LOOKUP_BATCH):
        batch = unique[i : i + _LOOKUP_BATCH]
        yield from session.execute(
            select(*columns).where(EmbeddingRow.model == model, EmbeddingRow.text_sha256.in_(batch))
        )


def embed_missing(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    texts_by_hash: dict[str, str],
    on_batch: Callable[[int], None] = lambda n: None,
    on_start: Callable[[int], None] = lambda total: None,
    model: str | None = None,
    dtype: type = np.float32,
) -> int:
    """Embed the texts whose hash has no cached embedding, committing batch by batch so a killed job keeps its
    work. Returns how many texts were embedded. `model` names the rows when they are not the chunks' own
    embeddings (answer sentences, retrieval/sentence_vectors.py); `dtype` is how the vectors are stored."""
    model = model or embedder.cache_key
    with sessions() as session:
        todo = sorted(missing_embeddings(session, model, texts_by_hash))
    on_start(len(todo))
    batch_size = max(embedder.batch_size * 4, 64)
    for i in range(0, len(todo), batch_size):
        batch = todo[i : i + batch_size]
        vectors = embedder.embed([texts_by_hash[h] for h in batch])
        with sessions.begin() as session:
            session.add_all(
                EmbeddingRow(text_sha256=h, model=model, vector=v.astype(dtype).tobytes())
                for h, v in zip(batch, vectors, strict=True)
            )
        on_batch(len(batch))
    return len(todo)


def indexed_chunks(session: Session):
    """Every indexed chunk's hash, title, section and text."""
    return session.execute(
        select(ChunkRow.text_sha256, ChunkRow.title, ChunkRow.section, ChunkRow.text)
        .join(Document)
        .where(Document.status == "indexed")
    )


def indexed_texts(session: Session) -> dict[str, str]:
    """Every indexed chunk's text by hash, as the index sees it: what a new embedding model or variant must embed."""
    return {row.text_sha256: index_text(row.title, row.section, row.text) for row in indexed_chunks(session)}


def publish_version(
    session: Session, settings: Settings, dimension: int, job_id: int | None, merge_all: bool = False
) -> int:
    """Write a new index version from the indexed documents as this (uncommitted) session sees them, and mark it
    live in the same session. It becomes live for readers when the caller commits.

    The new version reuses the live version's segments, marks the chunks no longer indexed (removed documents,
    replaced chunks) deleted, and writes one new segment with the chunks the live version lacks, plus the live
    rows of segments the policy folds in (`plan_version`). `merge_all` folds everything into one segment."""
    version = (session.scalar(select(func.max(IndexVersion.version))) or 0) + 1
    indexed = _indexed_chunk_ids(session)
    documents, otherwise = _document_metas(session, chunking_key(settings))
    build = build_settings(settings, len(indexed))
    if otherwise:  # documents outside the folders ingested since a chunking change: the index is mixed
        build["chunking"][OTHERWISE_CHUNKED] = otherwise
    live = live_version(session)
    layout = None if live is None else read_layout(settings, live)
    plan = plan_version(None if merge_all else layout, indexed, build, settings)
    segments = list(plan.kept)
    if len(plan.written):
        rows = _segment_rows(session, settings, plan.written, dimension, everything=len(plan.written) == len(indexed))
        segments.append(write_segment(settings, f"s{version}", rows))
    write_version(settings, version, segments, plan.deleted, documents, build, dimension)
    calibrate_version(settings, version, indexed, layout, lambda chunk_ids: chunk_texts(session, chunk_ids))
    for current in session.scalars(select(IndexVersion).where(IndexVersion.status == "live")):
        current.status = "retired"
    session.add(IndexVersion(version=version, status="live", chunk_count=len(indexed), job_id=job_id))
    return version


def chunk_texts(session: Session, chunk_ids: np.ndarray) -> list[str]:
    """The index text of each chunk id, in the order given, as `session` sees the catalogue."""
    by_id: dict[int, str] = {}
    for i in range(0, len(chunk_ids), _LOOKUP_BATCH):
        batch = [int(c) for c in chunk_ids[i : i + _LOOKUP_BATCH]]
        rows = session.execute(
            select(ChunkRow.id, ChunkRow.title, ChunkRow.section, ChunkRow.text).where(ChunkRow.id.in_(batch))
        )
        by_id.update((row.id, index_text(row.title, row.section, row.text)) for row in rows)
    return [by_id[int(c)] for c in chunk_ids]


@dataclass(frozen=True)
class Plan:
    """What the next version is made of: segments kept as they are, then one new segment."""

    kept: list[SegmentRef]
    written: np.ndarray  # chunk ids the new segment holds, ascending
    deleted: np.ndarray  # chunk ids the kept segments hold that the version no longer serves


def plan_version(layout: Layout | None, indexed: np.ndarray, build: dict, settings: Settings) -> Plan:
    """Build on `layout` (the live version) unless it cannot be: none, or built with other embedding, BM25 or dense
    settings. A kept segment with more than PENNY_INDEX_MAX_DELETED_FRACTION of its rows deleted is folded into
    the new segment (its live rows written again), and so are the smallest ones while the version would have more
    than PENNY_INDEX_MAX_SEGMENTS segments."""
    rebuild = Plan([], indexed, np.zeros(0, dtype=np.int64))
    if layout is None or any(d.stage != "chunking" for d in differences(layout.manifest.get("build"), build)):
        return rebuild
    serving = [np.isin(ids, indexed) & ~np.isin(ids, layout.deleted) for ids in layout.chunk_ids]
    candidates = [
        i for i, mask in enumerate(serving) if mask.any() and 1 - mask.mean() <= settings.index_max_deleted_fraction
    ]
    by_size = sorted(candidates, key=lambda i: int(serving[i].sum()))
    while len(by_size) + 1 > settings.index_max_segments:
        by_size.pop(0)
    kept = sorted(by_size)  # segments stay in the order they were written
    held = [np.asarray(layout.chunk_ids[i])[serving[i]] for i in kept]
    written = np.setdiff1d(indexed, np.concatenate(held) if held else np.zeros(0, np.int64), assume_unique=True)
    approximate = any(layout.segments[i].approximate for i in kept) or len(written) >= settings.ann_min_chunks
    if approximate != build["ann"]["approximate"]:  # the segments would not be the index the settings describe
        return rebuild
    deleted = [np.asarray(layout.chunk_ids[i])[~serving[i]] for i in kept]
    return Plan(
        kept=[layout.segments[i] for i in kept],
        written=written,
        deleted=np.concatenate(deleted) if deleted else np.zeros(0, dtype=np.int64),
    )


def live_index_outdated(sessions: sessionmaker[Session], settings: Settings) -> bool:
    """Whether the live version is of an older format than this Penny reads: the next job rebuilds it even when no
    document changed, so that `penny ingest` heals an index an upgrade left unreadable."""
    with sessions() as session:
        live = live_version(session)
    manifest = read_manifest(settings, live) if live is not None else None
    return manifest is not None and manifest.get("format") != FORMAT_VERSION


def tidy_versions(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Keep the live version and the one before it (a reader may still be using it), and the segments they use;
    drop the rest."""
    with sessions() as session:
        keep = set(session.scalars(select(IndexVersion.version).order_by(IndexVersion.version.desc()).limit(2)))
    remove_unused(settings, keep)


class IndexBusy(PennyError):
    code = "job_running"


@contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """One writer of index versions per data directory: the file ingestion jobs lock (ingest.pipeline.job_lock)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            message = "another ingestion job or a compaction is running on this data directory; wait for it"
            raise IndexBusy(message) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compact(settings: Settings) -> int:
    """Merge every segment of the live version into one new segment without its deleted rows, published as a new
    live version (from the catalogue: nothing is parsed or embedded). Returns the new version."""
    sessions = open_catalogue(settings)
    with write_lock(settings):
        with sessions.begin() as session:
            live = live_version(session)
            if live is None:
                raise IndexUnavailable("nothing has been ingested yet: run `penny ingest PATH` first")
            manifest = read_manifest(settings, live) or {}
            found = differences(manifest.get("build"), build_settings(settings, 0))
            stale = [difference for difference in found if difference.stage == "embedding"]
            if stale or "dimension" not in manifest:
                raise BadInput(
                    f"the live index cannot be compacted from the embeddings it was built with "
                    f"({'; '.join(d.describe() for d in stale) or 'its manifest is unreadable'}): run `penny ingest "
                    "PATH` on the same folders instead"
                )
            version = publish_version(session, settings, manifest["dimension"], None, merge_all=True)
        tidy_versions(sessions, settings)
    return version


@dataclass(frozen=True)
class SegmentStatus:
    name: str
    rows: int
    deleted: int
    dense: str  # "exact" or "hnsw"


@dataclass(frozen=True)
class IndexStatus:
    version: int
    format: int
    chunks: int  # live rows: what search can return
    rows: int
    deleted: int
    segments: list[SegmentStatus]


def index_status(settings: Settings) -> IndexStatus:
    """The live version's segments with their rows and deleted rows."""
    with open_catalogue(settings)() as session:
        live = live_version(session)
    if live is None:
        raise IndexUnavailable("nothing has been ingested yet: run `penny ingest PATH` first")
    manifest = read_manifest(settings, live)
    if manifest is None:
        raise IndexUnavailable(f"index version {live} has no readable manifest: run `penny index compact`")
    layout = read_layout(settings, live)
    if layout is None:  # an older format: one folder, no segments
        chunks = manifest.get("chunks", 0)
        return IndexStatus(live, manifest.get("format", 0), chunks, chunks, 0, [])
    segments = [
        SegmentStatus(
            name=ref.name,
            rows=ref.rows,
            deleted=int(np.isin(ids, layout.deleted).sum()),
            dense="hnsw" if ref.approximate else "exact",
        )
        for ref, ids in zip(layout.segments, layout.chunk_ids, strict=True)
    ]
    return IndexStatus(live, FORMAT_VERSION, manifest["chunks"], manifest["rows"], manifest["deleted"], segments)


def _indexed_chunk_ids(session: Session) -> np.ndarray:
    ids = session.scalars(select(ChunkRow.id).join(Document).where(Document.status == "indexed").order_by(ChunkRow.id))
    return np.fromiter(ids, dtype=np.int64)


def _document_metas(session: Session, chunking: str) -> tuple[list[DocumentMeta], int]:
    """Every indexed document's filter metadata, and how many were chunked with other settings than `chunking`."""
    rows = session.execute(
        select(Document.id, Document.path, Document.source, Document.doc_type, Document.groups, Document.chunking)
        .where(Document.status == "indexed")
        .order_by(Document.id)
    ).all()
    metas = [
        DocumentMeta(id=r.id, path=r.path, source=r.source, doc_type=r.doc_type, groups=tuple(r.groups)) for r in rows
    ]
    return metas, sum(1 for row in rows if row.chunking != chunking)


def _segment_rows(
    session: Session, settings: Settings, chunk_ids: np.ndarray, dimension: int, everything: bool
) -> SegmentRows:
    """The catalogue's rows of `chunk_ids` (every indexed chunk when `everything`), with their vectors."""
    columns = (ChunkRow.id, ChunkRow.document_id, ChunkRow.text_sha256, ChunkRow.title, ChunkRow.section, ChunkRow.text)
    if everything:
        query = select(*columns).join(Document).where(Document.status == "indexed").order_by(ChunkRow.id)
        rows = session.execute(query).all()
    else:
        rows = []
        for i in range(0, len(chunk_ids), _LOOKUP_BATCH):
            batch = [int(c) for c in chunk_ids[i : i + _LOOKUP_BATCH]]
            rows += session.execute(select(*columns).where(ChunkRow.id.in_(batch))).all()
        rows.sort(key=lambda row: row.id)
    return SegmentRows(
        chunk_ids=np.array([row.id for row in rows], dtype=np.int64),
        document_ids=np.array([row.document_id for row in rows], dtype=np.int64),
        text_keys=np.array([int(row.text_sha256[:15], 16) for row in rows], dtype=np.int64),
        vectors=_vectors_for(session, embedding_key(settings), [row.text_sha256 for row in rows], dimension),
        texts=[index_text(row.title, row.section, row.text) for row in rows],
    )


def stored_embeddings(session: Session, model: str, hashes: Iterable[str]) -> dict[str, bytes]:
    """The stored vectors (raw bytes) of those `hashes` that have one under `model`."""
    return dict(_embedding_rows(session, model, hashes, EmbeddingRow.text_sha256, EmbeddingRow.vector))


def _vectors_for(session: Session, model: str, hashes: list[str], dimension: int) -> np.ndarray:
    by_hash = stored_embeddings(session, model, hashes)
    missing = [h for h in set(hashes) if h not in by_hash]
    if missing:
        raise RuntimeError(f"{len(missing)} chunks have no embedding; the ingestion job must embed them first")
    matrix = np.zeros((len(hashes), dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        matrix[i] = np.frombuffer(by_hash[h], dtype=np.float32)
    return matrix
