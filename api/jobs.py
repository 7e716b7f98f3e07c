"""Ingestion jobs started over the API: run in a background thread, their id returned as soon as it exists."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from api.metrics import Metrics
from ingest.pipeline import IngestRequest, Progress, ingest
from penny import PennyError, Settings

log = logging.getLogger("penny.api.jobs")
START_TIMEOUT_SECONDS = 30.0


class _Started(Progress):
    def __init__(self) -> None:
        self.job_id: int | None = None
        self.ready = threading.Event()

    def job_started(self, job_id: int) -> None:
        self.job_id = job_id
        self.ready.set()


class IngestRunner:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics

    def start(self, request: IngestRequest, finished: Callable[[], object] | None = None) -> int:
        """Start a job and return its id once the job row exists; errors before that (bad paths, another job
        running) are raised here, so the caller gets them as a response rather than a failed job. `finished`
        runs once the job is over, however it ended (or when it never started)."""
        progress = _Started()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                report = ingest(self.settings, request, progress)
                self.metrics.observe_ingest(report.status, report.counts())
            except BaseException as exc:  # the job row records failures after start; earlier ones go to start()
                failure.append(exc)
                if progress.ready.is_set():
                    self.metrics.observe_ingest("failed", {})
                    log.exception("ingestion job %s failed", progress.job_id)
            finally:
                if finished is not None:
                    try:
                        finished()
                    except OSError:
                        log.exception("tidying up after ingestion job %s failed", progress.job_id)
                progress.ready.set()

        threading.Thread(target=run, name="penny-ingest", daemon=True).start()
        if not progress.ready.wait(START_TIMEOUT_SECONDS):
            raise PennyError("the ingestion job did not start in time; see `penny jobs`", code="job_not_started")
        if progress.job_id is None:
            error = failure[0] if failure else PennyError("the ingestion job did not start")
            if isinstance(error, PennyError):
                raise error
            raise PennyError(f"the ingestion job could not start: {type(error).__name__}") from error
        return progress.job_id


def ingest_request(paths: list[str], groups: list[str], source: str, prune: bool) -> IngestRequest:
    return IngestRequest(paths=[Path(p) for p in paths], groups=groups, source=source, prune=prune)
