"""Ingestion jobs started over the API, each in a process of its own: parsing and embedding never take the serving
process's CPU (the job runs niced, PENNY_INGEST_NICE) or memory, and a file that slips past every check costs the
job, not the server. The job's id is returned as soon as its row exists; the job process exits with the server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from api.metrics import Metrics
from api.uploads import uploads_dir
from ingest.admin import mark_dead_jobs
from ingest.job import Progress
from ingest.parallel import exit_with_parent
from ingest.pipeline import IngestRequest, ingest, validate_request
from penny import PennyError, Settings
from retrieval.catalogue import open_catalogue

log = logging.getLogger("penny.api.jobs")
START_TIMEOUT_SECONDS = 120.0  # a new process imports torch and unstructured before it writes the job's row
# spawn, not fork: the server runs torch's and the event loop's threads, which do not survive a fork
_PROCESSES = multiprocessing.get_context("spawn")


class IngestRunner:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._running: set[multiprocessing.process.BaseProcess] = set()

    def start(self, request: IngestRequest, finished: Callable[[], object] | None = None) -> int:
        """Start a job and return its id once the job row exists; errors before that (bad paths, another job
        running) are raised here, so the caller gets them as a response rather than a failed job. `finished`
        runs once the job is over, however it ended (or when it never started)."""
        validate_request(request)  # answered at once, without starting a process
        receiver, sender = _PROCESSES.Pipe(duplex=False)
        process = _PROCESSES.Process(
            target=run_job,
            args=(self.settings, request, sender, os.getpid(), logging.getLogger().level),
            name="penny-ingest",
            daemon=False,
        )
        process.start()
        self._running.add(process)
        sender.close()  # the child holds the only sending end: its exit reads as EOF here
        first = _receive(receiver, START_TIMEOUT_SECONDS)
        job_id = first[1] if first and first[0] == "started" else None
        threading.Thread(
            target=self._reap, args=(process, receiver, job_id, finished), name="penny-ingest-reaper", daemon=True
        ).start()
        if job_id is not None:
            return job_id
        if first is None:
            process.kill()
            raise PennyError("the ingestion job did not start in time; see `penny jobs`", code="job_not_started")
        _, code, message = first
        raise PennyError(message, code=code)

    def _reap(self, process, receiver: Connection, job_id: int | None, finished: Callable[[], object] | None) -> None:
        """Wait for the job's process, count its outcome, and tidy up after it, however it ended."""
        last = _receive(receiver, None) if job_id is not None else None
        process.join()
        self._running.discard(process)
        receiver.close()
        if job_id is not None:
            if last is None:  # killed before it could say how it ended: its row must not keep saying running
                mark_dead_jobs(open_catalogue(self.settings))
                log.error("ingestion job %s ended with exit code %s", job_id, process.exitcode)
            status, counts = last[1:] if last else ("interrupted", {})
            self.metrics.observe_ingest(status, counts)
        if finished is not None:
            try:
                finished()
            except OSError:
                log.exception("tidying up after ingestion job %s failed", job_id)

    def close(self) -> None:
        """Stop the jobs still running (the server is shutting down): each is then `interrupted`, and its next
        run reuses what it embedded."""
        for process in list(self._running):
            process.terminate()
        for process in list(self._running):
            process.join(30)


def _receive(receiver: Connection, timeout: float | None) -> tuple | None:
    try:
        return receiver.recv() if receiver.poll(timeout) else None
    except EOFError:  # the process ended without a word
        return None


class _Reporting(Progress):
    def __init__(self, sender: Connection) -> None:
        self.sender = sender
        self.started = False

    def job_started(self, job_id: int) -> None:
        self.started = True
        self.sender.send(("started", job_id))


def run_job(settings: Settings, request: IngestRequest, sender: Connection, server_pid: int, log_level: int) -> None:
    """The job process: run one job and tell the server ("started", id), then ("finished", status, counts); or
    ("refused", code, message) when it could not start."""
    exit_with_parent(server_pid)
    os.nice(settings.ingest_nice)
    from api.logs import configure_logging

    configure_logging(log_level)
    progress = _Reporting(sender)
    try:
        report = ingest(settings, request, progress)
        sender.send(("finished", report.status, report.counts()))
    except BaseException as exc:  # the job row records failures after the start; earlier ones go to the server
        if progress.started:
            log.exception("ingestion job failed")
            sender.send(("finished", "failed", {}))
        elif isinstance(exc, PennyError):
            sender.send(("refused", exc.code, str(exc)))
        else:
            log.exception("the ingestion job could not start")
            sender.send(("refused", "job_not_started", f"the ingestion job could not start: {type(exc).__name__}"))
    finally:
        sender.close()


def ingest_roots(settings: Settings) -> list[Path]:
    """The folders an admin may have the server read: uploads, and those configured (PENNY_INGEST_ROOTS)."""
    return [uploads_dir(settings), *settings.ingest_roots]


def ingest_request(settings: Settings, paths: list[str], groups: list[str], source: str, prune: bool) -> IngestRequest:
    return IngestRequest(
        paths=[Path(p) for p in paths], groups=groups, source=source, prune=prune, roots=ingest_roots(settings)
    )
