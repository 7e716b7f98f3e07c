"""Reading, parsing and chunking files, in worker processes when there are many: unstructured parses on one core,
so a pool of processes is what lets a large ingestion use every core."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ingest.chunk import ChunkDraft, chunk_document
from ingest.files import read_bounded
from ingest.parse import ParsedDocument, ParseFailure, UnpackLimits, parse_bytes
from penny import Settings
from retrieval.embedder import count_tokens, load_tokenizer

log = logging.getLogger("penny.ingest")

# Below this many files a pool's start-up (a few seconds per worker for imports and models) costs more than it saves.
MIN_FILES_FOR_POOL = 16


@dataclass(frozen=True)
class ParseJob:
    path: str
    within: str | None  # the real folder the file must resolve into (None: named by an operator, may lead anywhere)
    max_bytes: int
    unpack: UnpackLimits
    max_chunks: int
    languages: tuple[str, ...]
    model_name: str
    max_tokens: int
    overlap_tokens: int


@dataclass(frozen=True)
class Parsed:
    """What became of one file: its content hash and size as read, and either chunks or why there are none."""

    path: str
    sha256: str
    size: int
    parsed: ParsedDocument | None = None
    drafts: tuple[ChunkDraft, ...] = ()
    failure_kind: str = ""
    failure_reason: str = ""


@lru_cache(maxsize=2)
def _tokenizer(model_name: str):
    return load_tokenizer(model_name)


def parse_file(job: ParseJob) -> Parsed:
    """Never raises for a bad file: failures come back as data, since exceptions do not cross processes well."""
    try:
        content = read_bounded(job.path, job.within, job.max_bytes)
    except ParseFailure as failure:
        return _refused(job, "", 0, failure)
    except OSError as exc:
        return _refused(job, "", 0, ParseFailure("unreadable", f"cannot read the file: {exc.strerror or exc}"))
    digest, size = hashlib.sha256(content).hexdigest(), len(content)
    try:
        parsed = parse_bytes(Path(job.path), content, job.languages, job.unpack)
    except ParseFailure as failure:
        return _refused(job, digest, size, failure)
    except Exception as exc:  # a parser library choking on a malformed file must not abort the whole job
        log.warning("parser failed on %s", job.path, exc_info=True)
        reason = f"the file could not be parsed: {type(exc).__name__}: {exc}"
        return _refused(job, digest, size, ParseFailure("corrupt", reason))
    tokenizer = _tokenizer(job.model_name)
    count = lambda texts: count_tokens(tokenizer, texts)  # noqa: E731
    try:
        drafts = chunk_document(parsed, count, job.max_tokens, job.overlap_tokens, job.max_chunks)
    except ParseFailure as failure:
        return _refused(job, digest, size, failure)
    return Parsed(job.path, digest, size, parsed=parsed, drafts=tuple(drafts))


def _refused(job: ParseJob, digest: str, size: int, failure: ParseFailure) -> Parsed:
    return Parsed(job.path, digest, size, failure_kind=failure.kind, failure_reason=failure.reason)


def parse_files(
    paths: list[str], settings: Settings, within: Mapping[str, str | None] | None = None
) -> Iterator[Parsed]:
    """Parse `paths`, yielding results in the order of `paths`; `within` names the real folder each path must
    resolve into (absent: anywhere)."""
    jobs = parse_jobs(paths, settings, within)
    workers = min(settings.parse_worker_count, len(jobs))
    if workers < 2 or len(jobs) < MIN_FILES_FOR_POOL:
        yield from map(parse_file, jobs)
        return
    # spawn, not fork: the parent may already run torch's thread pools, which do not survive a fork
    with ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        yield from pool.map(parse_file, jobs, chunksize=4)


def parse_jobs(paths: list[str], settings: Settings, within: Mapping[str, str | None] | None = None) -> list[ParseJob]:
    """One self-contained ParseJob per path: what a worker process (or a cluster's task) needs to parse it."""
    within = within or {}
    unpack = UnpackLimits(settings.max_unpacked_bytes, settings.max_compression_ratio)
    return [
        ParseJob(
            path,
            within.get(path),
            settings.max_file_bytes,
            unpack,
            settings.max_chunks_per_document,
            tuple(settings.document_languages),
            settings.embedding_model,
            settings.chunk_max_tokens,
            settings.chunk_overlap_tokens,
        )
        for path in paths
    ]


def exit_with_parent(parent_pid: int, interval_seconds: float = 0.5) -> None:
    """Make this process exit once `parent_pid`, the process that started it, is gone. A parent killed with
    kill -9 runs no clean-up, and its workers would parse on as orphans (~0.5 GB each) for minutes. A watching
    thread rather than prctl(PR_SET_PDEATHSIG): that signal follows the parent *thread*, and a server starts its
    jobs from pool threads that come and go."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_seconds)
        os._exit(1)  # from any thread: the whole process ends at once

    if os.getppid() != parent_pid:  # the parent died while this process was starting
        os._exit(1)
    threading.Thread(target=watch, name="penny-exit-with-parent", daemon=True).start()
