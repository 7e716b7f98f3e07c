"""Writing side of retrieval: the embedding cache and publishing a new index version from the catalogue."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from penny import Settings
from retrieval.build import OTHERWISE_CHUNKED, build_settings, chunking_key
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, IndexVersion
from retrieval.embedder import Embedder, embedding_key
from retrieval.snapshot import DocumentMeta, IndexRows, remove_unused_versions, write_version

_LOOKUP_BATCH = 500


def index_text(title: str, section: str, text: str) -> str:
    """What BM25 and the embedder see of a chunk: its heading path (or title) and its text."""
    return f"{section or title}\n{text}"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def missing_embeddings(session: Session, model: str, hashes: Iterable[str]) -> set[str]:
    wanted = set(hashes)
    found: set[str] = set()
    ordered = sorted(wanted)
    for i in range(0, len(ordered), _LOOKUP_BATCH):
        batch = ordered[i : i + _LOOKUP_BATCH]
        found.update(
            session.scalars(
                select(EmbeddingRow.text_sha256).where(EmbeddingRow.model == model, EmbeddingRow.text_sha256.in_(batch))
            )
        )
    return wanted - found


def embed_missing(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    texts_by_hash: dict[str, str],
    on_batch: Callable[[int], None] = lambda n: None,
    on_start: Callable[[int], None] = lambda total: None,
) -> int:
    """Embed the texts whose hash has no cached embedding, committing batch by batch so a killed job keeps its
    work. Returns how many texts were embedded."""
    with sessions() as session:
        todo = sorted(missing_embeddings(session, embedder.cache_key, texts_by_hash))
    on_start(len(todo))
    batch_size = max(embedder.batch_size * 4, 64)
    for i in range(0, len(todo), batch_size):
        batch = todo[i : i + batch_size]
        vectors = embedder.embed([texts_by_hash[h] for h in batch])
        with sessions.begin() as session:
            session.add_all(
                EmbeddingRow(text_sha256=h, model=embedder.cache_key, vector=v.tobytes())
                for h, v in zip(batch, vectors, strict=True)
            )
        on_batch(len(batch))
    return len(todo)


def indexed_texts(session: Session) -> dict[str, str]:
    """Every indexed chunk's text by hash: what a new embedding model or variant must embed."""
    rows = session.execute(
        select(ChunkRow.text_sha256, ChunkRow.title, ChunkRow.section, ChunkRow.text)
        .join(Document)
        .where(Document.status == "indexed")
    )
    return {row.text_sha256: index_text(row.title, row.section, row.text) for row in rows}


def publish_version(session: Session, settings: Settings, dimension: int, job_id: int | None) -> int:
    """Write a new index version from the indexed documents as this (uncommitted) session sees them, and mark it
    live in the same session. It becomes live for readers when the caller commits."""
    documents = session.scalars(select(Document).where(Document.status == "indexed")).all()
    rows = session.execute(
        select(ChunkRow.id, ChunkRow.document_id, ChunkRow.text_sha256, ChunkRow.title, ChunkRow.section, ChunkRow.text)
        .join(Document)
        .where(Document.status == "indexed")
        .order_by(ChunkRow.id)
    ).all()
    vectors = _vectors_for(session, embedding_key(settings), [row.text_sha256 for row in rows], dimension)
    version = (session.scalar(select(func.max(IndexVersion.version))) or 0) + 1
    index_rows = IndexRows(
        chunk_ids=np.array([row.id for row in rows], dtype=np.int64),
        document_ids=np.array([row.document_id for row in rows], dtype=np.int64),
        text_keys=np.array([int(row.text_sha256[:15], 16) for row in rows], dtype=np.int64),
        vectors=vectors,
        texts=[index_text(row.title, row.section, row.text) for row in rows],
        documents=[
            DocumentMeta(id=d.id, path=d.path, source=d.source, doc_type=d.doc_type, groups=tuple(d.groups))
            for d in documents
        ],
    )
    build = build_settings(settings, len(rows))
    chunking = chunking_key(settings)
    otherwise = sum(1 for document in documents if document.chunking != chunking)
    if otherwise:  # documents outside the folders ingested since a chunking change: the index is mixed
        build["chunking"][OTHERWISE_CHUNKED] = otherwise
    write_version(settings, version, index_rows, build)
    for live in session.scalars(select(IndexVersion).where(IndexVersion.status == "live")):
        live.status = "retired"
    session.add(IndexVersion(version=version, status="live", chunk_count=len(rows), job_id=job_id))
    return version


def tidy_versions(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Keep the live version and the one before it (a reader may still be using it); drop the rest."""
    with sessions() as session:
        keep = set(session.scalars(select(IndexVersion.version).order_by(IndexVersion.version.desc()).limit(2)))
    remove_unused_versions(settings, keep)


def _vectors_for(session: Session, model: str, hashes: list[str], dimension: int) -> np.ndarray:
    by_hash: dict[str, bytes] = {}
    unique = sorted(set(hashes))
    for i in range(0, len(unique), _LOOKUP_BATCH):
        batch = unique[i : i + _LOOKUP_BATCH]
        by_hash.update(
            (h, v)
            for h, v in session.execute(
                select(EmbeddingRow.text_sha256, EmbeddingRow.vector).where(
                    EmbeddingRow.model == model, EmbeddingRow.text_sha256.in_(batch)
                )
            )
        )
    missing = [h for h in unique if h not in by_hash]
    if missing:
        raise RuntimeError(f"{len(missing)} chunks have no embedding; the ingestion job must embed them first")
    matrix = np.zeros((len(hashes), dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        matrix[i] = np.frombuffer(by_hash[h], dtype=np.float32)
    return matrix
