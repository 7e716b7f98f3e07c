"""The index side of a job, and ingestion's one seam into retrieval's index writing (retrieval/indexer.py): which
build settings the live version is stale in, embedding the texts that have no embedding yet, and publishing a new
index version in the same transaction that writes the catalogue.

Embeddings are committed batch by batch as they are made, while documents, chunks and the live index version change
together in one transaction at the end: a job killed before that commit leaves the previous version in force, and
the next run re-parses what changed and reuses every embedding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from ingest.job import JobReport, Progress, record_counts, record_finish
from ingest.store import Plan, write_plan
from penny import Settings
from retrieval import sentence_vectors
from retrieval.build import Difference, build_settings, differences, stale_stages
from retrieval.catalogue import Document, live_version
from retrieval.embedder import Embedder, embedding_key, get_embedder
from retrieval.indexer import embed_missing, indexed_texts, live_index_outdated, publish_version, tidy_versions
from retrieval.snapshot import read_manifest

log = logging.getLogger("penny.ingest")

# What the next job redoes when a build setting changed (retrieval/build.py's stages).
_REDO = {
    "chunking": "re-chunking the documents cut with the old settings, embedding only chunks not seen before",
    "embedding": "re-embedding every chunk with the new model or variant",
    "bm25": "rebuilding the BM25 index (embeddings reused)",
    "ann": "rebuilding the dense index (embeddings reused)",
}


def stale_build(settings: Settings, sessions: sessionmaker[Session]) -> list[Difference]:
    """The settings the live index version was built with that differ from today's (none when nothing is live)."""
    with sessions() as session:
        version = live_version(session)
    if version is None:
        return []
    manifest = read_manifest(settings, version) or {}
    return differences(manifest.get("build"), build_settings(settings, manifest.get("chunks", 0)))


def embed_and_publish(
    settings: Settings,
    sessions: sessionmaker[Session],
    embedder: Embedder,
    plan: Plan,
    known: dict[str, Document],
    report: JobReport,
    progress: Progress,
) -> None:
    """Embed the plan's new texts, then write the plan and publish the index version it makes, as one commit."""
    report.rebuilt = [f"{d.describe()}: {_REDO[d.stage]}" for d in plan.stale]
    for line in report.rebuilt:
        log.info("settings changed since the live index version: %s", line)
    _embed(sessions, embedder, plan, report, progress)
    progress.stage("publishing")
    # an index of an older format is rebuilt by the next job even when no document changed
    changes_index = plan.changes_index or live_index_outdated(sessions, settings)
    previous = current_version(sessions)
    with publishing(settings, sessions, report, changes_index) as session:
        write_plan(session, plan, known, report)
    if settings.sentence_vectors:
        embed_answer_sentences(settings, sessions, embedder, previous, plan.chunk_texts(), report, progress)


def embed_answer_sentences(
    settings: Settings,
    sessions: sessionmaker[Session],
    embedder: Embedder,
    previous: int | None,
    new_texts: list[str],
    report: JobReport,
    progress: Progress,
) -> None:
    """After the version is live: embed the answer sentences it lacks (retrieval/sentence_vectors.py). Only the
    new chunks' when the version before had all of its own, else every chunk's (each sentence is embedded once,
    whatever its number of chunks). A failure here leaves the job succeeded: answers embed those sentences live."""
    live = report.index_version or previous  # the version published now, else the one that stayed live
    if live is None or sentence_vectors.is_marked(settings, live, embedder.cache_key):
        return
    started = time.perf_counter()
    try:
        if previous is None or not sentence_vectors.is_marked(settings, previous, embedder.cache_key):
            with sessions() as session:
                new_texts = sentence_vectors.indexed_chunk_texts(session)
        report.sentences_embedded = sentence_vectors.embed_sentences(
            sessions,
            embedder,
            new_texts,
            on_start=lambda total: progress.stage("embedding answer sentences", total),
            on_batch=lambda n: progress.advance(embedded=n),
        )
        sentence_vectors.mark(settings, live, embedder.cache_key)
        record_counts(sessions, report)
    except Exception as exc:  # noqa: BLE001  (the index is live and right; this step only saves answer time)
        log.warning("answer sentences not embedded (the next job retries): %s: %s", type(exc).__name__, exc)
    report.seconds["sentences"] = round(time.perf_counter() - started, 3)


def carry_sentence_mark(settings: Settings, previous: int | None, current: int | None) -> None:
    """A version with fewer documents than a marked one lacks no sentence vector either."""
    key = embedding_key(settings)
    if previous is not None and current is not None and sentence_vectors.is_marked(settings, previous, key):
        sentence_vectors.mark(settings, current, key)


def current_version(sessions: sessionmaker[Session]) -> int | None:
    with sessions() as session:
        return live_version(session)


@contextmanager
def publishing(
    settings: Settings, sessions: sessionmaker[Session], report: JobReport, changes_index: bool = True
) -> Iterator[Session]:
    """The transaction that ends a job. The body writes its catalogue changes into the session; then, if they change
    the index, a version is published from what the session sees, and the job is recorded as succeeded. It all
    commits together; versions no reader needs any more are removed after the commit."""
    started = time.perf_counter()
    with sessions.begin() as session:
        yield session
        session.flush()
        if changes_index:  # the process's shared embedder, looked up only now: a refused deletion loads no model
            dimension = get_embedder(settings).dimension
            report.index_version = publish_version(session, settings, dimension, report.job_id)
        report.seconds["publish"] = round(time.perf_counter() - started, 3)
        record_finish(session, report, "succeeded", None)
    if changes_index:
        tidy_versions(sessions, settings)


def _embed(
    sessions: sessionmaker[Session], embedder: Embedder, plan: Plan, report: JobReport, progress: Progress
) -> None:
    texts = plan.texts()
    if "embedding" in stale_stages(plan.stale):  # a new model or variant: every chunk kept is embedded again
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
