"""One ingestion job's life: the data directory's lock, the job's row from start to finish, its report, and the
progress it tells its caller. Every job (files, records, deletions) runs inside `ingestion_job`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from penny import Settings
from retrieval.catalogue import IngestionJob, open_catalogue, utcnow
from retrieval.indexer import IndexBusy, write_lock

log = logging.getLogger("penny.ingest")


JobAlreadyRunning = IndexBusy  # raised by job_lock when another job or a compaction holds the lock


@dataclass
class JobReport:
    job_id: int
    status: str = "running"
    files_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = 0
    chunks_added: int = 0
    chunks_embedded: int = 0
    sentences_embedded: int = 0  # answer sentences, after the version is live (ingest/publish.py)
    index_version: int | None = None
    # settings that changed since the live version was built, each with what it costs (re-chunk, re-embed, rebuild)
    rebuilt: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage: scan, embed, publish

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in (
                "files_seen",
                "added",
                "updated",
                "unchanged",
                "removed",
                "failed",
                "skipped",
                "chunks_added",
                "chunks_embedded",
                "sentences_embedded",
            )
        }


class Progress:
    """What the job tells its caller as it goes; the CLI draws a bar from it, the API and tests ignore it."""

    def job_started(self, job_id: int) -> None: ...

    def start(self, files: int) -> None: ...

    def advance(self, files: int = 0, chunks: int = 0, embedded: int = 0) -> None: ...

    def stage(self, name: str, total: int | None = None) -> None:
        """A new stage begins; `total` is how many items it will advance through, when known."""


@contextmanager
def ingestion_job(settings: Settings, paths: list[Path]) -> Iterator[tuple[sessionmaker[Session], JobReport]]:
    """One job under the data directory's lock: its row is created first, and marked failed if the body raises.
    The body marks it succeeded itself (`record_finish`), in the transaction that publishes its work."""
    sessions = open_catalogue(settings)
    with job_lock(settings):
        _mark_interrupted_jobs(sessions)
        report = JobReport(job_id=_start_job(sessions, paths))
        log.info("ingestion job %d started", report.job_id, extra={"paths": [str(p) for p in paths]})
        try:
            yield sessions, report
        except BaseException as exc:
            if report.status == "succeeded":  # stopped after publishing: its version is live and stays so
                log.warning("ingestion job %d stopped after publishing: %s", report.job_id, exc)
                raise
            _finish_job(sessions, report, "failed", f"{type(exc).__name__}: {exc}")
            log.error("ingestion job %d failed: %s", report.job_id, exc)
            raise
    log.info("ingestion job %d %s", report.job_id, report.status, extra={**report.counts(), "seconds": report.seconds})


# One lock per data directory for every writer of index versions (jobs and compaction alike): retrieval owns it.
job_lock = write_lock


def record_finish(session: Session, report: JobReport, status: str, message: str | None) -> None:
    job = session.get(IngestionJob, report.job_id)
    report.status = status
    job.status, job.message, job.finished_at = status, message, utcnow()
    job.counts, job.index_version = report.counts(), report.index_version


def record_counts(sessions: sessionmaker[Session], report: JobReport) -> None:
    """Update a finished job's counts with work it did after publishing (its answer sentences)."""
    with sessions.begin() as session:
        session.get(IngestionJob, report.job_id).counts = report.counts()


def _start_job(sessions: sessionmaker[Session], paths: list[Path]) -> int:
    with sessions.begin() as session:
        job = IngestionJob(status="running", pid=os.getpid(), paths=[str(p) for p in paths])
        session.add(job)
        session.flush()
        return job.id


def _finish_job(sessions: sessionmaker[Session], report: JobReport, status: str, message: str | None) -> None:
    with sessions.begin() as session:
        record_finish(session, report, status, message)


def _mark_interrupted_jobs(sessions: sessionmaker[Session]) -> None:
    """Jobs still 'running' when we hold the lock were killed: say so, so `penny jobs` tells the truth."""
    with sessions.begin() as session:
        for job in session.scalars(select(IngestionJob).where(IngestionJob.status == "running")):
            job.status, job.finished_at = "interrupted", utcnow()
            job.message = "the job stopped before it finished (killed or crashed); the previous index stayed live"
