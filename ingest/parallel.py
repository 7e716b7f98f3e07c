"""Reading, parsing and chunking files, in worker processes when there are many: unstructured parses on one core,
so a pool of processes is what lets a large ingestion use every core."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ingest.chunk import ChunkDraft, chunk_document
from ingest.parse import ParsedDocument, ParseFailure, parse_bytes
from penny import Settings
from retrieval.embedder import count_tokens, load_tokenizer

log = logging.getLogger("penny.ingest")

# Below this many files a pool's start-up (a few seconds per worker for imports and models) costs more than it saves.
MIN_FILES_FOR_POOL = 16


@dataclass(frozen=True)
class ParseJob:
    path: str
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
        content = Path(job.path).read_bytes()
    except OSError as exc:
        return Parsed(job.path, "", 0, failure_kind="unreadable", failure_reason=f"cannot read the file: {exc}")
    digest, size = hashlib.sha256(content).hexdigest(), len(content)
    try:
        parsed = parse_bytes(Path(job.path), content, job.languages)
    except ParseFailure as failure:
        return Parsed(job.path, digest, size, failure_kind=failure.kind, failure_reason=failure.reason)
    except Exception as exc:  # a parser library choking on a malformed file must not abort the whole job
        log.warning("parser failed on %s", job.path, exc_info=True)
        reason = f"the file could not be parsed: {type(exc).__name__}: {exc}"
        return Parsed(job.path, digest, size, failure_kind="corrupt", failure_reason=reason)
    tokenizer = _tokenizer(job.model_name)
    drafts = chunk_document(parsed, lambda texts: count_tokens(tokenizer, texts), job.max_tokens, job.overlap_tokens)
    return Parsed(job.path, digest, size, parsed=parsed, drafts=tuple(drafts))


def parse_files(paths: list[str], settings: Settings) -> Iterator[Parsed]:
    """Parse `paths`, yielding results in the order of `paths`."""
    jobs = [
        ParseJob(path, tuple(settings.document_languages), settings.embedding_model, settings.chunk_max_tokens,
                 settings.chunk_overlap_tokens)
        for path in paths
    ]  # fmt: skip
    workers = min(settings.parse_worker_count, len(jobs))
    if workers < 2 or len(jobs) < MIN_FILES_FOR_POOL:
        yield from map(parse_file, jobs)
        return
    # spawn, not fork: the parent may already run torch's thread pools, which do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(parse_file, jobs, chunksize=4)
